"""What one training batch costs the host, for every shipped config: ATen ops, host reads, gradient traffic.

    python -m bench.host_overhead                     # every config in experiments/*.yaml, ~8 min on 2 CPU cores
    python -m bench.host_overhead --configs codec_dac --stacks --top 30   # where the host reads and ops come from
    python -m bench.host_overhead --strategy ddp_find_unused_parameters_true   # the one-wrapper DDP, for comparison

Each config is built as shipped (its callbacks and progress bar included), on the CPU, in fp32, at batch 1, and
fitted for a few batches on synthetic data; `bench/dispatch_counts.py` counts the ATen ops dispatched by one batch
that does not log (inside and outside the optimizers' `step`) and its host reads (`aten._local_scalar_dense`).
Counts are exact and the same on any CPU; on a GPU the host pays for each op (~10-20 us of dispatch) and stalls
at each read.

The all-reduce ratio is the gradient bytes DDP all-reduces per batch over the bytes of the trainable parameters
(`bench/allreduce_bytes.py`), measured in 2 gloo processes under the config's strategy (or `--strategy`): 1.00
means each trainable gradient crossed the network once.
"""

from __future__ import annotations

import argparse
import logging
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


if __name__ == "__main__":
    main()
