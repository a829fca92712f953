"""Every benchmark in one go (`make bench`): each runs in its own process (`python -m bench.<name>` from the
repository root) and writes its section of `bench/results/<device>.md`; the output of those that only print is
stored as a section here.

    python -m bench.run_all                 # ~35 min on an H100 node: the GPU benchmarks need a CUDA device
    python -m bench.run_all --only host_overhead    # the CPU table only (~15 min on 2 cores, ~12 GB of memory)

A benchmark that fails is reported with its exit status and the others still run; the exit status is 1 if any failed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from bench.results_markdown import environment_line, write_section

ROOT = Path(__file__).resolve().parents[1]

# name -> (module of bench and its arguments, whether it writes its own section)
BENCHMARKS = {
    "train_step_codec": (
        [
            "bench.train_step",
            "--config",
            "experiments/codec_dac.yaml",
            "--override=--data.init_args.synthetic_seconds=0.5",
        ],
        True,
    ),
    "train_step_enhance": (["bench.train_step", "--config", "experiments/enhance_cmgan.yaml"], True),
    "discriminators": (["bench.discriminators"], True),
    "pesq_overlap": (["bench.pesq_overlap", "--configs", "cmgan"], False),
    "callbacks_overhead": (["bench.callbacks_overhead"], False),
    "host_overhead": (["bench.host_overhead"], False),  # CPU: ops, host reads, all-reduce ratio per config
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=None, help=f"comma-separated subset of: {', '.join(BENCHMARKS)}")
    parser.add_argument("--results-dir", default=None)
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(BENCHMARKS)
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmarks {unknown}; choose from {list(BENCHMARKS)}")
    failed = []
    for name in names:
        (module, *arguments), writes_section = BENCHMARKS[name]
        script = ROOT / f"{module.replace('.', '/')}.py"
        if not script.exists():
            print(f"{name}: {script.relative_to(ROOT)} is missing, skipped", flush=True)
            continue
        command = [sys.executable, "-m", module, *arguments] + (
            ["--results-dir", args.results_dir] if args.results_dir and writes_section else []
        )
        print(f"\n=== {name}: {' '.join(command[1:])}", flush=True)
        began = time.perf_counter()
        completed = subprocess.run(command, cwd=ROOT, capture_output=not writes_section, text=True)
        minutes = (time.perf_counter() - began) / 60
        if completed.returncode != 0:
            failed.append(name)
            print(f"{name} failed with exit status {completed.returncode} after {minutes:.1f} min", flush=True)
        if not writes_section:
            output = (completed.stdout or "") + (completed.stderr or "" if completed.returncode else "")
            print(output, flush=True)
            lines = [line for line in output.splitlines() if line.strip()]
            write_section(
                name,
                f"### {name}\n\n{environment_line()}.\n\n```\n" + "\n".join(lines[-40:]) + "\n```",
                args.results_dir,
            )
        print(f"{name}: {minutes:.1f} min", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}")
        sys.exit(1)


if __name__ == "__main__":
    main()
