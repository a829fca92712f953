"""DiscriminatorHealth: is the discriminator learning, and does the generator still get a signal from it?"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch
from lightning.pytorch import LightningModule, Trainer

from callbacks.base import DiagnosticCallback
from codecgan.cadence import is_logging_step
from callbacks.running_sums import RunningSums
from codecgan.diagnosis import tags
from codecgan.diagnosis.rules import discriminator_at_chance, feature_matching_vanished

# name -> (sum, count) pairs; a term is averaged over the batches that reported a finite value.
TERMS = ("loss_d", "chance", "margin", "loss_fm", "loss_g", "grad_norm_d")
SUMS = tuple(f"{term}{part}" for term in TERMS for part in ("", "_n"))


class DiscriminatorHealth(DiagnosticCallback):
    """Measures, per logging interval, the discriminator loss relative to its chance value, the real-vs-fake logit
    margin, the feature-matching loss relative to its early value, and the discriminator's gradient norm.

    Reads the outputs `losses` (`loss_d`, `loss_fm`, `loss_g`), `d_stepped`, `d_real`, `d_fake`, `d_loss_chance` and
    `grad_norm_d`. Logs `diag/d_loss_to_chance`, `diag/d_margin`, `diag/fm_to_early` and `diag/grad_norm_d` (the
    module itself logs `train/loss_d` and its chance value `diag/d_loss_chance`). Why: a discriminator stuck
    at chance gives the generator no adversarial signal, and feature matching then vanishes with it. Catches
    DISCRIMINATOR_AT_CHANCE and FEATURE_MATCHING_VANISHED (checked at each epoch end on epoch medians). Under DDP
    the sums and counts are summed over ranks before dividing.
    """

    def __init__(self) -> None:
        super().__init__()
        self._sums = RunningSums(SUMS)
        self.early_fm: float | None = None

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if isinstance(outputs, Mapping):
            losses = outputs.get("losses") or {}
            values = {"loss_fm": losses.get("loss_fm"), "loss_g": losses.get("loss_g")}
            if outputs.get("d_stepped", True):
                values.update(loss_d=losses.get("loss_d"), chance=outputs.get("d_loss_chance"))
                values["grad_norm_d"] = outputs.get("grad_norm_d")
                if "d_real" in outputs and "d_fake" in outputs:
                    values["margin"] = outputs["d_real"] - outputs["d_fake"]
            self._sums.add_finite(values)
        if is_logging_step(trainer):
            self._flush(trainer, pl_module, log=True)
            self.alarms.log_active(pl_module)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # Close the epoch's partial interval (kept in the history only: step values cannot be logged here), so every
        # epoch has a round even when it is shorter than log_every_n_steps.
        self._flush(trainer, pl_module, log=False)
        self._raise(trainer, [discriminator_at_chance(self.history), feature_matching_vanished(self.history)])

    def _flush(self, trainer: Trainer, pl_module: LightningModule, log: bool) -> None:
        sums = self._sums.flush(trainer)
        means = {term: sums[term] / sums[term + "_n"] for term in TERMS if sums[term + "_n"] > 0}
        module_tags = {"loss_d": tags.TRAIN_LOSS_D, "loss_fm": tags.TRAIN_LOSS_FM, "loss_g": tags.TRAIN_LOSS_G}
        module_tags["chance"] = tags.D_LOSS_CHANCE
        # The module logs these itself; the callback keeps its interval means for the rules.
        self._record(
            trainer, pl_module, {tag: means[term] for term, tag in module_tags.items() if term in means}, log=False
        )
        values = {}
        if "chance" in means and "loss_d" in means and means["chance"]:
            values[tags.D_LOSS_TO_CHANCE] = means["loss_d"] / means["chance"]
        if "margin" in means:
            values[tags.D_MARGIN] = means["margin"]
        if "grad_norm_d" in means:
            values[tags.D_GRAD_NORM] = means["grad_norm_d"]
        if "loss_fm" in means:
            if self.early_fm is None:
                self.early_fm = means["loss_fm"]
            if self.early_fm:
                values[tags.FM_TO_EARLY] = means["loss_fm"] / self.early_fm
        self._record(trainer, pl_module, values, log=log)

    def _rank_local_sums(self) -> list[RunningSums]:
        return [self._sums]

    def _extra_state(self) -> dict[str, Any]:
        return {"sums": self._sums.state_dict(), "early_fm": self.early_fm}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self._sums.load_state_dict(state["sums"])
        self.early_fm = state["early_fm"]
