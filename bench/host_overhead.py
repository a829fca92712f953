"""What one training batch costs the host, for every shipped config: ATen ops, host reads, gradient traffic.

    python bench/host_overhead.py                     # every config in experiments/*.yaml, ~3 min on 2 CPU cores
    python bench/host_overhead.py --configs codec_dac --stacks   # where each host read comes from

Each config is built as shipped (its callbacks included), on the CPU, in fp32, at batch 1, and fitted for a few
batches on synthetic data; `bench/dispatch_counts.py` counts the ATen ops dispatched by one batch that does not
log (inside and outside the optimizers' `step`) and its host reads (`aten._local_scalar_dense`). Counts are
exact and the same on any CPU; on a GPU the host pays for each op (~10-20 us of dispatch) and stalls at each read.

The all-reduce ratio (gradient bytes all-reduced per batch / bytes of the trainable parameters) is measured by
`bench/allreduce_ratio.py` in 2 gloo processes, since it needs a process group.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import warnings
from pathlib import Path

import lightning as L
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.dispatch_counts import BatchDispatchCounter, DispatchCounts  # noqa: E402
from codecgan.lightning_cli import build_cli  # noqa: E402

COUNTED_BATCH = 2  # batches 0 and 1 warm up (lazy state, first optimizer step); batch 2 does not log


def count_one_batch(config: Path, scratch: Path, overrides: list[str] = (), keep_stacks: bool = False) -> DispatchCounts:
    """Fit `config` for `COUNTED_BATCH + 1` batches on the CPU in fp32 at batch 1 and count batch `COUNTED_BATCH`."""
    args = [
        "--config", str(config),
        "--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.strategy", "auto",
        "--trainer.precision", "32-true", "--trainer.max_steps", str(COUNTED_BATCH + 1),
        "--trainer.max_epochs", "-1", "--trainer.limit_val_batches", "0", "--trainer.num_sanity_val_steps", "0",
        "--trainer.log_every_n_steps", "50",
        "--trainer.enable_model_summary", "false", "--trainer.default_root_dir", str(scratch),
        "--trainer.logger.init_args.save_dir", str(scratch),
        "--data.init_args.train_dir", "null", "--data.init_args.val_dir", "null", "--data.init_args.test_dir", "null",
        "--data.init_args.batch_size", "1", "--data.init_args.num_workers", "0",
        "--data.init_args.synthetic_items", "[8, 1, 1]",
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default=None, help="comma-separated config names (default: every experiments/*.yaml)")
    parser.add_argument("--stacks", action="store_true", help="print where each host read comes from")
    parser.add_argument("--top", type=int, default=0, help="print the N most frequent ops outside the optimizers")
    args = parser.parse_args()
    names = args.configs.split(",") if args.configs else sorted(p.stem for p in (ROOT / "experiments").glob("*.yaml"))
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    rows = []
    for name in names:
        with tempfile.TemporaryDirectory() as scratch:
            counts = count_one_batch(ROOT / "experiments" / f"{name}.yaml", Path(scratch), keep_stacks=args.stacks)
        rows.append((name, counts))
        print(f"{name}: {counts.ops_outside} ops outside the optimizers, {counts.ops_inside} inside, "
              f"{counts.host_reads} host reads", flush=True)
        for stack in counts.host_read_stacks:
            print("  host read at:\n" + stack)
        for op, count in counts.outside.most_common(args.top):
            print(f"    {count:6d} {op}")
    print("\n| config | ops per batch (outside optimizers) | ops inside optimizers | host reads per batch |")
    print("|---|---:|---:|---:|")
    for name, counts in rows:
        print(f"| {name} | {counts.ops_outside:,} | {counts.ops_inside:,} | {counts.host_reads} |")


if __name__ == "__main__":
    main()
