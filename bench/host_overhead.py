"""What one training batch costs the host, for every shipped config: ATen ops, host reads, gradient traffic.

    python -m bench.host_overhead                     # every config in experiments/*.yaml, ~8 min on 2 CPU cores
    python -m bench.host_overhead --configs codec_dac --stacks --top 30   # where the host reads and ops come from
    python -m bench.host_overhead --strategy ddp_find_unused_parameters_true   # the one-wrapper DDP, for comparison
    python -m bench.host_overhead --configs codec_dac --no-ratio --dac-venv /work/venvs/dacref   # against DAC's own
    python -m bench.host_overhead --configs vocoder_vocos_24k --no-ratio --no-dac   # against Vocos's own

Each config is built as shipped (its callbacks and progress bar included), on the CPU, in fp32, at batch 1, and
fitted for a few batches on synthetic data; `bench/dispatch_counts.py` counts the ATen ops dispatched by one batch
that does not log (inside and outside the optimizers' `step`) and its host reads (`aten._local_scalar_dense`).
Counts are exact and the same on any CPU; on a GPU the host pays for each op (~10-20 us of dispatch) and stalls
at each read.

DAC's own training step (`bench/dac_own_step.py`: descript-audio-codec's `scripts/train.py` loop with its
per-step logging, at the same batch and precision) is counted the same way in DAC's own virtual environment
(`--dac-venv`, default `$CODECGAN_DAC_VENV` or /work/venvs/dacref, as `tests/fixtures/dac/README.md` makes it), as a
subprocess: codecgan never imports DAC. Without that environment the comparison is skipped with a message.
Vocos's own step (`bench/vocos_own_step.py`: `VocosExp.training_step` of vocos 0.1.0 for its discriminators then its
generator, as Lightning 1.x calls it, with the optimizer steps) is counted the same way in Vocos's environment
(`--vocos-venv`, default `$CODECGAN_VOCOS_VENV` or /work/venvs/vocosref) and compared with `vocoder_vocos_24k`.

The all-reduce ratio is the gradient bytes DDP all-reduces per batch over the bytes of the trainable parameters
(`bench/allreduce_bytes.py`), measured in 2 gloo processes under the config's strategy (or `--strategy`): 1.00
means each trainable gradient crossed the network once.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import tempfile
import warnings
from pathlib import Path

import lightning as L
import torch
import yaml

from bench.allreduce_bytes import measure_ratio
from bench.dispatch_counts import HOST_READ, BatchDispatchCounter, DispatchCounts
from codecgan.lightning_cli import build_cli

ROOT = Path(__file__).resolve().parents[1]

COUNTED_BATCH = 2  # batches 0 and 1 warm up (lazy state, first optimizer step); batch 2 does not log
DEFAULT_DAC_VENV = Path(os.environ.get("CODECGAN_DAC_VENV", "/work/venvs/dacref"))
DEFAULT_VOCOS_VENV = Path(os.environ.get("CODECGAN_VOCOS_VENV", "/work/venvs/vocosref"))


def count_one_batch(
    config: Path, scratch: Path, overrides: list[str] = (), keep_stacks: bool = False
) -> DispatchCounts:
    """Fit `config` for `COUNTED_BATCH + 1` batches on the CPU in fp32 at batch 1 and count batch `COUNTED_BATCH`."""
    args = [
        "--config",
        str(config),
        "--trainer.accelerator",
        "cpu",
        "--trainer.devices",
        "1",
        "--trainer.strategy",
        "auto",
        "--trainer.precision",
        "32-true",
        "--trainer.max_steps",
        str(COUNTED_BATCH + 1),
        "--trainer.max_epochs",
        "-1",
        "--trainer.limit_val_batches",
        "0",
        "--trainer.num_sanity_val_steps",
        "0",
        "--trainer.log_every_n_steps",
        "50",
        "--trainer.default_root_dir",
        str(scratch),
        "--trainer.logger.init_args.save_dir",
        str(scratch),
        "--data.init_args.train_dir",
        "null",
        "--data.init_args.val_dir",
        "null",
        "--data.init_args.test_dir",
        "null",
        "--data.init_args.batch_size",
        "1",
        "--data.init_args.num_workers",
        "0",
        "--data.init_args.synthetic_items",
        "[8, 1, 1]",
        *overrides,
    ]
    cli = build_cli(args, run=False)
    for callback in cli.trainer.callbacks:
        if isinstance(callback, L.pytorch.callbacks.ModelCheckpoint):
            callback.dirpath = str(scratch / "checkpoints")
    counter = BatchDispatchCounter(COUNTED_BATCH, keep_stacks=keep_stacks)
    cli.trainer.callbacks.append(counter)
    cli.trainer.fit(cli.model, cli.datamodule)
    return counter.counts


def run_in_venv(venv: Path, module: str) -> dict | None:
    """Run `python -m module` from the repository root in `venv` and parse the JSON line it prints last.

    None when `venv` has no Python; a failing script raises with its error output.
    """
    python = Path(venv) / "bin" / "python"
    if not python.exists():
        return None
    result = subprocess.run(
        [str(python), "-m", module],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    if result.returncode != 0:
        raise RuntimeError(f"{module} failed in {venv} (exit {result.returncode}):\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def count_dac_own_step(dac_venv: Path) -> dict | None:
    """DAC's own training step counted by `bench/dac_own_step.py` in `dac_venv` (see there for the fields)."""
    return run_in_venv(dac_venv, "bench.dac_own_step")


def count_vocos_own_step(vocos_venv: Path) -> dict | None:
    """Vocos's own training step counted by `bench/vocos_own_step.py` in `vocos_venv` (see there for the fields)."""
    return run_in_venv(vocos_venv, "bench.vocos_own_step")


def dac_comparison(dac: dict, codecgan: DispatchCounts | None) -> str:
    """Sentences comparing DAC's own step with codecgan's `codec_dac` batch (when it was counted)."""
    device_reads = dac["logged_tensors"] + dac["transform_host_reads"]
    python_numbers = dac["host_reads_outside"] - device_reads
    text = (
        f"DAC's own step (descript-audio-codec's train.py loop, batch {dac['batch_size']} of "
        f"{dac['excerpt_seconds']} s, fp32, CPU, torch {dac['torch']}): {dac['ops_outside']:,} ops outside the "
        f"optimizers ({dac['transform_ops']:,} of them in its data transform on the device) and "
        f"{dac['ops_inside']:,} inside; {dac['host_reads_outside']} host reads outside the optimizers, "
        f"{device_reads} of which wait for the device on a GPU ({dac['logged_tensors']} by its tracker's .item() of "
        f"the step's logged tensors, {dac['transform_host_reads']} in the data transform) and {python_numbers} read "
        f"tensors the tracker makes from Python numbers; {dac['host_reads_inside']} inside (CPU AdamW's step counters)."
    )
    if codecgan is not None:
        ops_ratio = dac["ops_outside"] / codecgan.ops_outside
        without_transform = (dac["ops_outside"] - dac["transform_ops"]) / codecgan.ops_outside
        text += (
            f"\ncodec_dac: {codecgan.ops_outside:,} ops outside the optimizers and {codecgan.outside[HOST_READ]} host "
            f"reads. DAC / codecgan: {ops_ratio:.2f}x the ops ({without_transform:.2f}x without DAC's data "
            f"transform, which codecgan runs in its data loader), {dac['host_reads_outside']} against "
            f"{codecgan.outside[HOST_READ]} host reads."
        )
    return text


def vocos_comparison(vocos: dict, codecgan: DispatchCounts | None) -> str:
    """Sentences comparing Vocos's own step with codecgan's `vocoder_vocos_24k` batch (when it was counted)."""
    text = (
        f"Vocos's own step (vocos {vocos['vocos']} VocosExp.training_step for its discriminators then its generator, "
        f"with both optimizer steps, batch {vocos['batch_size']} of {vocos['samples']} samples, fp32, CPU, torch "
        f"{vocos['torch']}): {vocos['ops_outside']:,} ops outside the optimizers and {vocos['ops_inside']:,} inside; "
        f"{vocos['host_reads_outside']} host reads outside the optimizers (Lightning 1.x adds "
        f"{vocos['progress_bar_reads']} for its progress bar on every batch, of the {vocos['logged_tensors']} "
        f"tensors the step logs), {vocos['host_reads_inside']} inside (CPU AdamW's step counters)."
    )
    if codecgan is not None:
        text += (
            f"\nvocoder_vocos_24k: {codecgan.ops_outside:,} ops outside the optimizers and "
            f"{codecgan.ops_inside:,} inside, {codecgan.outside[HOST_READ]} host reads. Vocos / codecgan: "
            f"{vocos['ops_outside'] / codecgan.ops_outside:.2f}x the ops outside the optimizers."
        )
    return text


def shipped_strategy(config: Path) -> str:
    strategy = (yaml.safe_load(config.read_text()).get("trainer") or {}).get("strategy")
    return strategy if isinstance(strategy, str) and strategy.startswith(("gan_ddp", "ddp")) else "gan_ddp"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--configs", default=None, help="comma-separated config names (default: every experiments/*.yaml)"
    )
    parser.add_argument(
        "--strategy", default=None, help="DDP strategy for the all-reduce ratio (default: the config's)"
    )
    parser.add_argument("--no-ratio", action="store_true", help="skip the 2-process all-reduce measurement")
    parser.add_argument("--stacks", action="store_true", help="print where each host read comes from")
    parser.add_argument("--top", type=int, default=0, help="print the N most frequent ops outside the optimizers")
    parser.add_argument(
        "--dac-venv",
        type=Path,
        default=DEFAULT_DAC_VENV,
        help=f"DAC's virtual environment, for DAC's own step (default: $CODECGAN_DAC_VENV or {DEFAULT_DAC_VENV})",
    )
    parser.add_argument("--no-dac", action="store_true", help="skip counting DAC's own training step")
    parser.add_argument(
        "--vocos-venv",
        type=Path,
        default=DEFAULT_VOCOS_VENV,
        help=f"Vocos's virtual environment, for Vocos's own step (default: $CODECGAN_VOCOS_VENV or {DEFAULT_VOCOS_VENV})",
    )
    parser.add_argument("--no-vocos", action="store_true", help="skip counting Vocos's own training step")
    args = parser.parse_args()
    names = args.configs.split(",") if args.configs else sorted(p.stem for p in (ROOT / "experiments").glob("*.yaml"))
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    rows = []
    for name in names:
        config = ROOT / "experiments" / f"{name}.yaml"
        with tempfile.TemporaryDirectory() as scratch:
            counts = count_one_batch(config, Path(scratch), keep_stacks=args.stacks)
        strategy = args.strategy or shipped_strategy(config)
        ratio = float("nan")
        if not args.no_ratio:
            with tempfile.TemporaryDirectory() as scratch:
                ratio = measure_ratio(config, strategy, Path(scratch))
        rows.append((name, counts, strategy, ratio))
        print(
            f"{name}: {counts.ops_outside} ops outside the optimizers, {counts.ops_inside} inside, "
            f"host reads {counts.outside[HOST_READ]} outside and {counts.inside[HOST_READ]} inside them, "
            f"all-reduce ratio {ratio:.2f} ({strategy})",
            flush=True,
        )
        for stack in counts.host_read_stacks:
            print("  host read at:\n" + stack)
        for op, count in counts.outside.most_common(args.top):
            print(f"    {count:6d} {op}")
    print(
        "\n| config | ops per batch, outside / inside the optimizers | host reads per batch, outside / inside "
        "| gradient bytes all-reduced / trainable bytes |"
    )
    print("|---|---:|---:|---:|")
    for name, counts, strategy, ratio in rows:
        print(
            f"| {name} | {counts.ops_outside:,} / {counts.ops_inside:,} "
            f"| {counts.outside[HOST_READ]} / {counts.inside[HOST_READ]} | {ratio:.2f} ({strategy}) |"
        )
    if not args.no_dac:
        print_dac_comparison(args.dac_venv, rows)
    if not args.no_vocos:
        print_vocos_comparison(args.vocos_venv, rows)


def print_dac_comparison(dac_venv: Path, rows: list) -> None:
    dac = count_dac_own_step(dac_venv)
    if dac is None:
        print(
            f"\nDAC's own step not counted: {dac_venv} has no bin/python. Make DAC's environment as "
            "tests/fixtures/dac/README.md says and pass --dac-venv (or set CODECGAN_DAC_VENV)."
        )
        return
    codec_dac = next((counts for name, counts, _, _ in rows if name == "codec_dac"), None)
    print("\n" + dac_comparison(dac, codec_dac))


def print_vocos_comparison(vocos_venv: Path, rows: list) -> None:
    vocos = count_vocos_own_step(vocos_venv)
    if vocos is None:
        print(
            f"\nVocos's own step not counted: {vocos_venv} has no bin/python. Make a virtual environment with "
            "vocos==0.1.0 and torch and pass --vocos-venv (or set CODECGAN_VOCOS_VENV)."
        )
        return
    vocoder = next((counts for name, counts, _, _ in rows if name == "vocoder_vocos_24k"), None)
    print("\n" + vocos_comparison(vocos, vocoder))


if __name__ == "__main__":
    main()
