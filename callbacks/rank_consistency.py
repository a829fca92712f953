"""RankConsistency: do all DDP replicas still hold the same weights?"""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import LightningModule, Trainer

from callbacks.base import DiagnosticCallback, require
from callbacks.distributed import all_gather, copy_from_rank_zero
from callbacks.sync_moments import every_n_batches
from codecgan.cadence import is_logging_step, logged_step
from codecgan.diagnosis import tags
from codecgan.diagnosis.rules import rank_divergence
from codecgan.diagnosis.rules.training_health import RANK_SPREAD_TOLERANCE


def parameter_checksums(pl_module: LightningModule) -> tuple[list[str], torch.Tensor]:
    """Names of the module's top-level children that hold parameters, and `[children, 2]` float64 checksums
    (sum and sum of squares of all their parameters)."""
    names, rows = [], []
    for name, child in pl_module.named_children():
        params = [p.detach() for p in child.parameters()]
        if params:
            names.append(name)
            rows.append(
                torch.stack(
                    [
                        torch.stack([p.double().sum() for p in params]).sum(),
                        torch.stack([p.double().square().sum() for p in params]).sum(),
                    ]
                )
            )
    return names, torch.stack(rows) if rows else torch.zeros(0, 2, dtype=torch.float64)


class RankConsistency(DiagnosticCallback):
    """Under DDP, every `every_n_steps` batches, compares checksums of each top-level submodule's parameters
    (e.g. generator, discriminator) across ranks.

    Logs `diag/rank_param_spread/<submodule>`: the largest relative difference of a rank's checksum from rank 0's
    (0 when the replicas are identical). Why: DDP keeps replicas identical only if every rank takes the same steps; a
    step skipped or taken on one rank silently trains several different models. Catches RANK_DIVERGENCE. Reads the
    module's parameters (the one thing it reads besides the outputs); does nothing in a single process.

    `resync`: when replicas differ, copy rank 0's parameters and buffers to every rank (the fix that
    `codecgan confirm` tries for RANK_DIVERGENCE), log the spread that remains and count `diag/rank_resyncs`.
    """

    codes = ("RANK_DIVERGENCE",)
    sync_moments = {"on_train_batch_end": every_n_batches("every_n_steps")}

    def __init__(self, every_n_steps: int = 100, resync: bool = False) -> None:
        super().__init__()
        require(
            isinstance(every_n_steps, int) and every_n_steps >= 1,
            f"RankConsistency every_n_steps must be a positive integer, got {every_n_steps!r}.",
        )
        self.every_n_steps = every_n_steps
        self.resync = resync
        self.resyncs = 0

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if trainer.world_size > 1 and (logged_step(trainer) + 1) % self.every_n_steps == 0:
            names, checksums = parameter_checksums(pl_module)
            gathered = all_gather(trainer, checksums.to(trainer.strategy.root_device)).cpu()  # [world, children, 2]
            spread = ((gathered - gathered[0]).abs() / (gathered[0].abs() + 1e-12)).amax(dim=(0, 2))
            if self.resync and bool((spread > RANK_SPREAD_TOLERANCE).any()):
                copy_from_rank_zero(
                    trainer, [tensor.data for tensor in [*pl_module.parameters(), *pl_module.buffers()]]
                )
                self.resyncs += 1
                _, checksums = parameter_checksums(pl_module)
                gathered = all_gather(trainer, checksums.to(trainer.strategy.root_device)).cpu()
                spread = ((gathered - gathered[0]).abs() / (gathered[0].abs() + 1e-12)).amax(dim=(0, 2))
                self._record(trainer, pl_module, {"diag/rank_resyncs": float(self.resyncs)})
            spreads = {tags.RANK_PARAM_SPREAD_PREFIX + name: float(s) for name, s in zip(names, spread.tolist())}
            self._record(trainer, pl_module, spreads)
            self._raise(trainer, {"RANK_DIVERGENCE": rank_divergence(self.history)})
        if is_logging_step(trainer):
            self.alarms.log_active(pl_module)

    def _extra_state(self) -> dict[str, Any]:
        return {"resyncs": self.resyncs}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self.resyncs = int(state.get("resyncs", 0))
