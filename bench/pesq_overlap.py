"""Training-step time of the enhancement family with PESQ (a) inline and blocking, CMGAN's way, (b) in
the worker pool with lag 0, (c) in the pool with lag 1, and (d) not computed at all.

    .venv/bin/python -m bench.pesq_overlap                    # tiny and CMGAN size, ~2 min on 2 idle CPU cores
    .venv/bin/python -m bench.pesq_overlap --configs tiny --steps 30

For each config the module comes from ``experiments/enhance_<config>.yaml``; the batches are synthesized
once beforehand (data generation is not timed) and each variant fits ``--warmup + --steps`` batches in
this process, with validation off, on one device (bf16-mixed on a GPU). A batch is timed from
``on_train_batch_start`` to ``on_train_batch_end``, the GPU synchronized at both ends; the table shows
the median in ms and its ratio to (d). (a') is the pool waited on right after submitting, like CMGAN's
warm joblib workers. On a CPU the PESQ workers share the cores with PyTorch's threads, so (b) and (c)
can only hide PESQ behind idle cores; on a GPU machine they hide it behind the accelerator's work.

Defaults: 30 timed steps after 2 warm-up on a GPU, at each config's batch (CMGAN: 4 x 2 s). On a CPU,
8 timed steps for tiny, and for the CMGAN size 1 timed step after 1 warm-up at a batch of 1 x 0.5 s:
a CMGAN-size step costs about 10 s of 2-core CPU time per second of audio and several GB of memory,
so CPU numbers for it only show that PESQ is small next to such a step.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import time
import types
import warnings
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from codecgan.data import SyntheticNoisySpeech
from codecgan.lightning_cli import build_cli
from codecgan.metrics import PesqHandle, PesqResult

ROOT = Path(__file__).resolve().parents[1]

VARIANTS = {
    "(a) inline, blocking": {"pesq_workers": 0, "pesq_lag": 0},
    "(a') pool, blocking": {"pesq_workers": None, "pesq_lag": 0},
    "(b) pool, lag 0": {"pesq_workers": None, "pesq_lag": 0},
    "(c) pool, lag 1": {"pesq_workers": None, "pesq_lag": 1},
    "(d) no PESQ": {"pesq_workers": 0, "pesq_lag": 0},
}


class StepTimer(L.Callback):
    """Wall time of every training batch, in seconds."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    def _sync(self, module: L.LightningModule) -> None:
        if module.device.type == "cuda":
            torch.cuda.synchronize(module.device)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._sync(pl_module)
        self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._sync(pl_module)
        self.seconds.append(time.perf_counter() - self.start)


def build_module(config: str, variant: dict, batch_size: int | None = None):
    """The config's module with the variant's PESQ settings, and its data module's crop and batch size."""
    model_args = [f"--model.init_args.{key}={'null' if value is None else value}" for key, value in variant.items()]
    # The config's own trainer (4 GPUs for cmgan) is replaced by a one-device trainer in time_variant.
    cli = build_cli(
        [
            "--config",
            str(ROOT / "experiments" / f"enhance_{config}.yaml"),
            "--trainer.logger",
            "false",
            "--trainer.accelerator",
            "cpu",
            "--trainer.devices",
            "1",
            "--trainer.strategy",
            "auto",
            "--data.init_args.train_dir",
            "null",
            *model_args,
        ],
        run=False,
    )
    return cli.model, cli.datamodule.crop_samples, batch_size or cli.datamodule.batch_size


def cached_batches(crop_samples: int, batch_size: int, count: int) -> DataLoader:
    dataset = SyntheticNoisySpeech(batch_size * count, crop_samples / 16000, 16000, seed=7)
    items = [dataset[index] for index in range(len(dataset))]
    return DataLoader(items, batch_size=batch_size, shuffle=False)


def time_variant(name: str, config: str, loader: DataLoader, steps: int, warmup: int) -> float:
    """Median step time (s) of one variant."""
    torch.manual_seed(0)
    module, _, _ = build_module(config, VARIANTS[name])
    if name.startswith("(d)"):  # constant targets, no PESQ computed
        module.score_estimates = types.MethodType(
            lambda self, clean, estimate, length: PesqHandle(
                result=PesqResult(np.full(clean.shape[0], 3.0), (None,) * clean.shape[0])
            ),
            module,
        )
    elif name.startswith("(a')"):
        submit = module.score_estimates
        module.score_estimates = lambda clean, estimate, length: PesqHandle(
            result=submit(clean, estimate, length).result()
        )
    timer = StepTimer()
    cuda = torch.cuda.is_available()
    trainer = L.Trainer(
        accelerator="gpu" if cuda else "cpu",
        devices=1,
        precision="bf16-mixed" if cuda else "32-true",
        max_steps=warmup + steps,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
    )
    trainer.fit(module, train_dataloaders=loader)
    return statistics.median(timer.seconds[warmup:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="tiny,cmgan", help="comma-separated: tiny, cmgan")
    cuda = torch.cuda.is_available()
    parser.add_argument("--steps", type=int, default=None, help="timed batches per variant (default: see above)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed batches first (default: see above)")
    parser.add_argument("--cmgan-batch-size", type=int, default=None, help="default: 4 on a GPU, 1 on a CPU")
    parser.add_argument("--cmgan-seconds", type=float, default=None, help="crop; default: 2.0 on a GPU, 0.5 on a CPU")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    device = torch.cuda.get_device_name() if cuda else f"CPU, {len(os.sched_getaffinity(0))} cores"
    print(f"PESQ overlap benchmark on {device}; torch {torch.__version__}")
    for config in args.configs.split(","):
        small = config == "cmgan" and not cuda
        steps = args.steps or (30 if cuda else 1 if small else 8)
        warmup = args.warmup if args.warmup is not None else (1 if small else 2)
        module, crop, batch = build_module(config, VARIANTS["(d) no PESQ"])
        if config == "cmgan":
            batch = args.cmgan_batch_size or (1 if small else batch)
            crop = round(16000 * (args.cmgan_seconds or (0.5 if small else crop / 16000)))
        params = sum(p.numel() for p in module.generator.parameters())
        loader = cached_batches(crop, batch, warmup + steps)
        print(
            f"\n{config}: generator {params / 1e6:.3f} M parameters, batch {batch} x {crop / 16000:.2f} s, "
            f"{steps} timed steps after {warmup} warm-up"
        )
        results = {name: time_variant(name, config, loader, steps, warmup) for name in VARIANTS}
        baseline = results["(d) no PESQ"]
        for name, seconds in results.items():
            print(f"  {name:<24} {1000 * seconds:9.1f} ms/step   {seconds / baseline:5.2f} x (d)")


if __name__ == "__main__":
    main()
