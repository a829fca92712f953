"""Gradient bytes all-reduced per batch under DDP, against the bytes of the trainable parameters.

`AllReduceBytes` is a callback that registers a counting communication hook on every DDP wrapper of the run
(Lightning's single wrapper or `gan_ddp`'s two) and, at the end, writes per rank: batches, bytes all-reduced and
bytes of the parameters the optimizers train. `measure_ratio` runs a config for a few batches in 2 CPU (gloo)
processes with it and returns bytes per batch / trainable bytes: 1.00 means each trainable gradient crossed the
network once per batch (with the discriminator training on every batch).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import yaml
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
from torch.nn.parallel import DistributedDataParallel

ROOT = Path(__file__).resolve().parents[1]


class AllReduceBytes(L.Callback):
    """Counts the bytes of every gradient bucket DDP all-reduces; writes `<directory>/rank<k>.json` at the end."""

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)
        self.bytes = 0
        self.batches = 0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        strategy = trainer.strategy
        wrappers = [strategy.model] if isinstance(strategy.model, DistributedDataParallel) else []
        wrappers += list(getattr(strategy, "wrappers", []))
        for wrapper in wrappers:
            wrapper.register_comm_hook(self, _counting_allreduce)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.batches += 1

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        trainable = sum(
            p.numel() * p.element_size() for opt in trainer.optimizers for g in opt.param_groups for p in g["params"]
        )
        self.directory.mkdir(parents=True, exist_ok=True)
        result = {"batches": self.batches, "bytes": self.bytes, "trainable_bytes": trainable}
        (self.directory / f"rank{trainer.global_rank}.json").write_text(json.dumps(result))


def _counting_allreduce(counter, bucket):  # no annotations: DDP checks them, and they are strings here
    buffer = bucket.buffer()
    counter.bytes += buffer.numel() * buffer.element_size()
    return default_hooks.allreduce_hook(None, bucket)


def measure_ratio(config: Path, strategy: str, scratch: Path, batches: int = 3, overrides: dict | None = None) -> float:
    """Fit `config` for `batches` batches in 2 CPU processes under `strategy`; bytes all-reduced per batch divided
    by the trainable parameters' bytes (rank 0's count; every rank reduces the same buckets)."""
    scratch.mkdir(parents=True, exist_ok=True)
    overlay = {
        "trainer": {
            "accelerator": "cpu",
            "devices": 2,
            "strategy": strategy,
            "precision": "32-true",
            "max_steps": batches,
            "max_epochs": -1,
            "limit_val_batches": 0,
            "num_sanity_val_steps": 0,
            "logger": False,
            "enable_checkpointing": False,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "default_root_dir": str(scratch),
            "callbacks": [
                {
                    "class_path": "bench.allreduce_bytes.AllReduceBytes",
                    "init_args": {"directory": str(scratch / "bytes")},
                }
            ],
        },
        # Half-second crops: the gradient bytes do not depend on the crop, and a CMGAN-size step on 2 s crops
        # needs about 10 GB per CPU process.
        "data": {
            "init_args": {
                "train_dir": None,
                "val_dir": None,
                "test_dir": None,
                "batch_size": 1,
                "num_workers": 0,
                "synthetic_items": [8, 2, 2],
                "crop_seconds": 0.5,
            }
        },
    }
    for section, values in (overrides or {}).items():
        overlay.setdefault(section, {}).update(values)
    path = scratch / "overlay.yaml"
    path.write_text(yaml.safe_dump(overlay))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "codecgan", "fit", "--config", str(config), "--config", str(path)]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        raise RuntimeError(f"{config.name} under {strategy} failed:\n{result.stderr[-3000:]}")
    counts = json.loads((scratch / "bytes" / "rank0.json").read_text())
    return counts["bytes"] / counts["batches"] / counts["trainable_bytes"]
