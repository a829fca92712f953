"""A callback the DDP tests name by class_path: each rank saves its final weights."""

from __future__ import annotations

import socket
from pathlib import Path

import lightning as L
import torch


class SaveRankWeights(L.Callback):
    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        torch.save(pl_module.state_dict(), self.directory / f"rank{trainer.global_rank}.pt")


class DumpValidationMetrics(L.Callback):
    """Rank 0 writes the validation metrics (reduced across ranks) to a JSON file."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            import json

            metrics = {key: float(value) for key, value in trainer.callback_metrics.items()}
            self.path.write_text(json.dumps(metrics, indent=1))


class RecordDiscriminatorSkips(L.Callback):
    """Each rank writes, per batch, whether its own batch lost a PESQ target and whether the discriminator's update
    was skipped (``pesq_dropped_batch``, ``d_update_skipped``) to ``<directory>/rank<k>.json``."""

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)
        self.rows: list[tuple[int, int]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.rows.append((int(outputs["pesq_dropped_batch"]), int(outputs["d_update_skipped"])))

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        import json

        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / f"rank{trainer.global_rank}.json").write_text(json.dumps(self.rows))


class RecordNetworkWeights(L.Callback):
    """Each rank saves both networks' flattened weights at the start of the fit and after each training batch to
    ``<directory>/rank<k>.pt`` (``{"generator": [B + 1, P_g], "discriminator": [B + 1, P_d]}``)."""

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)
        self.weights: dict[str, list[torch.Tensor]] = {"generator": [], "discriminator": []}

    def record(self, pl_module: L.LightningModule) -> None:
        for name, weights in self.weights.items():
            network = getattr(pl_module, name)
            weights.append(torch.cat([p.detach().flatten() for p in network.parameters()]).clone())

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.record(pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.record(pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        stacked = {name: torch.stack(weights) for name, weights in self.weights.items()}
        torch.save(stacked, self.directory / f"rank{trainer.global_rank}.pt")


def free_port() -> int:
    """A TCP port free on this machine now, for a test's own process group (``init_method``)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
