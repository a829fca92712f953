"""How much the full diagnostic callback set slows a tiny CPU fit.

    .venv/bin/python -m bench.callbacks_overhead [--steps 60] [--repeats 2]

Fits `experiments/codec_tiny.yaml` (shortened to --steps batches, validating twice) with and without every
codecgan diagnostic callback, alternating, in one process; prints each fit's time and the ratios of the
medians, of CPU time (robust to other processes sharing the cores) and of wall time. The callbacks' share
includes the extra backward passes GradientBalance asks the module for.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch
import yaml

from codecgan.lightning_cli import build_cli

ROOT = Path(__file__).resolve().parents[1]

DIAGNOSTIC_CALLBACKS = [
    {"class_path": "callbacks.DiagnosticsDashboard"},
    {"class_path": "callbacks.SignalStats"},
    {"class_path": "callbacks.DiscriminatorHealth"},
    {"class_path": "callbacks.GradientBalance", "init_args": {"every_n_steps": 20}},
    {"class_path": "callbacks.EvalDeterminism"},
    {"class_path": "callbacks.RankConsistency"},
    {"class_path": "callbacks.DivergenceMonitor", "init_args": {"metric": "val/snr_db"}},
    {"class_path": "callbacks.CodebookUsage", "init_args": {"window_steps": 20}},
    {"class_path": "callbacks.AudioSamples", "init_args": {"sample_rate": 16000, "n_items": 2}},
    {"class_path": "callbacks.PesqHealth"},
    {"class_path": "callbacks.MetricDiscriminatorMonitor"},
]


def timed_fit(directory: Path, steps: int, with_callbacks: bool) -> tuple[float, float]:
    """(CPU seconds of this process, wall seconds) of one fit."""
    overlay = {
        "trainer": {
            "max_steps": steps,
            "val_check_interval": steps // 2,
            "log_every_n_steps": 10,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "enable_checkpointing": False,
            "default_root_dir": str(directory),
            "logger": {
                "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                "init_args": {"save_dir": str(directory), "name": "tb", "default_hp_metric": False},
            },
            "callbacks": DIAGNOSTIC_CALLBACKS if with_callbacks else [],
        },
    }
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "overlay.yaml"
    config.write_text(yaml.safe_dump(overlay))
    cli = build_cli(["--config", str(ROOT / "experiments" / "codec_tiny.yaml"), "--config", str(config)], run=False)
    cpu, wall = time.process_time(), time.perf_counter()
    cli.trainer.fit(cli.model, cli.datamodule)
    return time.process_time() - cpu, time.perf_counter() - wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="batches per fit (default 60)")
    parser.add_argument("--repeats", type=int, default=2, help="fits per variant, alternating (default 2)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    cpu_times: dict[bool, list[float]] = {False: [], True: []}
    wall_times: dict[bool, list[float]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as scratch:
        timed_fit(Path(scratch) / "warmup", 4, True)  # imports, first-call allocations
        for repeat in range(args.repeats):
            for with_callbacks in (False, True):
                cpu, wall = timed_fit(Path(scratch) / f"{repeat}-{with_callbacks}", args.steps, with_callbacks)
                cpu_times[with_callbacks].append(cpu)
                wall_times[with_callbacks].append(wall)
                label = "with callbacks" if with_callbacks else "without      "
                print(
                    f"fit {repeat + 1} {label}: {cpu:.2f} s CPU, {wall:.2f} s wall for {args.steps} batches", flush=True
                )
    for name, times in (("CPU", cpu_times), ("wall", wall_times)):
        ratio = statistics.median(times[True]) / statistics.median(times[False])
        print(f"overhead ratio, {name} time (median with / median without): {ratio:.3f}")


if __name__ == "__main__":
    main()
