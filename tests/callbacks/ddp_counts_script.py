"""Fits a scripted module whose training steps report PESQ counts and metric-discriminator predictions, with
PesqHealth and MetricDiscriminatorMonitor attached, and writes their run totals as JSON.

    python tests/callbacks/ddp_counts_script.py OUT.json DEVICES

Each dataset item is a whole batch of 4 clips, so 1 or 2 processes score exactly the same batches.
"""

from __future__ import annotations

import json
import math
import sys

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

from callbacks import MetricDiscriminatorMonitor, PesqHealth
from codecgan.metrics import FAILURE_KINDS

BATCHES = 12
CLIPS = 4


class ScriptedBatches(Dataset):
    """Batch i: targets in [0, 1] with clip (i * 7 + c) % 5 == 0 failed (NaN) as FAILURE_KINDS[(i + c) % 8], and
    predictions near the targets."""

    def __len__(self) -> int:
        return BATCHES

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        clips = torch.arange(CLIPS)
        target = ((i * 7 + clips) % 11).double() / 10
        target[(i * 7 + clips) % 5 == 0] = math.nan
        prediction = 0.8 * target.nan_to_num(0.3) + 0.05 * ((i + clips) % 3)
        kind = torch.where(target.isnan(), (i + clips) % len(FAILURE_KINDS), -1)
        return {"target": target.float(), "prediction": prediction.float(), "kind": kind, "x": torch.ones(2)}


class ScriptedModule(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch: dict, batch_idx: int) -> dict:
        target = batch["target"]
        failed = int(target.isnan().sum())
        return {
            "loss": self.layer(batch["x"]).sum() * 0.0,
            "pesq_target": target,
            "metric_d_prediction": batch["prediction"],
            "pesq_clips": CLIPS,
            "pesq_failed_clips": failed,
            "pesq_dropped_batch": int(failed > 0),
            "pesq_failures": {kind: int((batch["kind"] == k).sum()) for k, kind in enumerate(FAILURE_KINDS)},
        }

    def train_dataloader(self) -> DataLoader:
        sampler = DistributedSampler(
            ScriptedBatches(), self.trainer.world_size, self.trainer.global_rank, shuffle=False
        )
        return DataLoader(ScriptedBatches(), batch_size=None, sampler=sampler)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def run(devices: int) -> dict:
    pesq, metric_d = PesqHealth(), MetricDiscriminatorMonitor()
    trainer = L.Trainer(
        accelerator="cpu",
        devices=devices,
        strategy="ddp" if devices > 1 else "auto",
        max_epochs=1,
        log_every_n_steps=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        use_distributed_sampler=False,
        callbacks=[pesq, metric_d],
    )
    trainer.fit(ScriptedModule())
    mae, corr = metric_d.train_mae_and_correlation
    return {
        "counts": pesq.total_counts,
        "failure_counts": pesq.failure_counts,
        "none_rate": pesq.none_rate,
        "mae": mae,
        "corr": corr,
        "rank": trainer.global_rank,
    }


if __name__ == "__main__":
    torch.set_num_threads(1)
    result = run(int(sys.argv[2]))
    if result.pop("rank") == 0:
        with open(sys.argv[1], "w") as handle:
            json.dump(result, handle)
