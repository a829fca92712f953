"""DiscriminatorHealth: is the discriminator learning, and does the generator still get a signal from it?"""

from __future__ import annotations

import functools
import math
from typing import Any, Mapping

import torch
from lightning.pytorch import LightningModule, Trainer

from callbacks.base import DiagnosticCallback
from callbacks.distributed import reduce_sum
from callbacks.history_compaction import (
    compact_between_rounds,
    flag_run_ends,
    flag_runs,
    median_at_round,
    run_ends_kept,
)
from callbacks.median_thinning import thin_keeping_medians
from callbacks.running_sums import RunningSums
from callbacks.sync_moments import at_logging_steps
from codecgan.cadence import is_logging_step
from codecgan.diagnosis import tags
from codecgan.diagnosis.history import Point
from codecgan.diagnosis.quality_metric import quality_metric, quality_values
from codecgan.diagnosis.rules import (
    discriminator_at_chance,
    discriminator_frozen,
    discriminator_overpowering,
    feature_matching_vanished,
)
from codecgan.diagnosis.rules.discriminator_balance import FROZEN_PATIENCE, FROZEN_RATIO, chance_ratios_per_epoch

# name -> (sum, count) pairs; a term is averaged over the batches that reported a finite value.
# Logging points of each step series kept as logged: its epoch medians need an epoch's points, and a run whose history
# is shorter than this is never thinned (the 30k-step live = offline test logs 600 points).
RECENT_POINTS = 1024
TERMS = ("loss_d", "chance", "margin", "loss_fm", "loss_g", "grad_norm_d")
SUMS = tuple(f"{term}{part}" for term in TERMS for part in ("", "_n"))


class DiscriminatorHealth(DiagnosticCallback):
    """Measures, per logging interval, the discriminator loss relative to its chance value, the real-vs-fake logit
    margin, the feature-matching loss relative to its early value, and the discriminator's gradient norm.

    Reads the outputs `losses` (`loss_d`, `loss_fm`, `loss_g`, and `loss_adv` at logging steps), `d_stepped`, `d_real`,
    `d_fake`, `d_loss_chance`, `grad_norm_d` and `d_update_ratio` (logging steps), and at each validation end the
    candidates of the family's quality metric (`codecgan.diagnosis.quality_metric`: `val/pesq`, `val/loss_mel`,
    `val/si_sdr`, `val/snr_db`) from `trainer.callback_metrics`. Logs
    `diag/d_loss_to_chance`, `diag/d_margin`, `diag/fm_to_early` and `diag/grad_norm_d` (the module itself logs
    `train/loss_d`, its chance value `diag/d_loss_chance` and `diag/d_update_ratio`). Why: a discriminator stuck at
    chance gives the generator no adversarial signal, and feature matching then vanishes with it; one whose weights do
    not move is a fixed judge; one that wins outright drags the generator away from quality. Catches
    DISCRIMINATOR_AT_CHANCE and FEATURE_MATCHING_VANISHED (at each epoch end, on epoch medians), DISCRIMINATOR_FROZEN
    (at logging steps) and DISCRIMINATOR_OVERPOWERING (at validation ends). The rules read the module's own logged
    values of `train/loss_d`, `train/loss_fm`, `train/loss_g` and `diag/d_loss_chance` (single batches at logging
    steps), as `codecgan diagnose` reads them from the logs. Under DDP the sums and counts are summed over ranks
    before dividing, and `loss_adv` is averaged over the ranks.
    """

    codes = (
        "DISCRIMINATOR_AT_CHANCE",
        "FEATURE_MATCHING_VANISHED",
        "DISCRIMINATOR_FROZEN",
        "DISCRIMINATOR_OVERPOWERING",
    )
    sync_moments = {"on_train_batch_end": at_logging_steps}
    unread_tags = (tags.FM_TO_EARLY, tags.D_GRAD_NORM)

    def __init__(self) -> None:
        super().__init__()
        self._sums = RunningSums(SUMS)
        self.early_fm: float | None = None
        # (epoch, values) of the module's last logged discriminator loss, chance value and update ratio. Not in the
        # state: after a resume Lightning no longer holds the earlier values either.
        self._logged_d: tuple[int, dict[str, float]] | None = None

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
            self._flush(trainer, pl_module)
            self._record_logged_step(trainer, outputs if isinstance(outputs, Mapping) else {})
            self._raise(trainer, {"DISCRIMINATOR_FROZEN": discriminator_frozen(self.history)})
            self.alarms.log_active(pl_module)

    def _record_logged_step(self, trainer: Trainer, outputs: Mapping) -> None:
        """Keep the values the module logged at this step for the rules: its single-batch `train/loss_g`,
        `train/loss_fm` and, when the discriminator stepped, `train/loss_d`, `diag/d_loss_chance` and the update ratio
        (the values `codecgan diagnose` reads, so the rules answer alike live and offline), and the generator's
        adversarial term averaged over the ranks (a collective; every rank has it or none does)."""
        losses = outputs.get("losses") or {}
        logged = {tags.TRAIN_LOSS_FM: losses.get("loss_fm"), tags.TRAIN_LOSS_G: losses.get("loss_g")}
        stepped = outputs.get("d_stepped", True)
        if stepped:
            logged.update({tags.TRAIN_LOSS_D: losses.get("loss_d"), tags.D_LOSS_CHANCE: outputs.get("d_loss_chance")})
        logged = {tag: value for tag, value in logged.items() if value is not None}
        device = trainer.strategy.root_device
        read = [torch.as_tensor(v, dtype=torch.float64, device=device).reshape(()) for v in logged.values()]
        values = dict(zip(logged, torch.stack(read).tolist())) if read else {}
        if outputs.get("d_update_ratio") is not None:
            values[tags.D_UPDATE_RATIO] = float(outputs["d_update_ratio"])
        # Lightning writes a step value logged earlier in the epoch again at each logging step that does not log it
        # anew: the discriminator's values, at logging steps where it did not step.
        if self._logged_d is None or self._logged_d[0] != trainer.current_epoch:
            self._logged_d = (trainer.current_epoch, {})
        for tag in (tags.TRAIN_LOSS_D, tags.D_LOSS_CHANCE, tags.D_UPDATE_RATIO):
            if tag in values:
                self._logged_d[1][tag] = values[tag]
            elif tag in self._logged_d[1]:
                values[tag] = self._logged_d[1][tag]
        adversarial = (outputs.get("losses") or {}).get("loss_adv")
        if isinstance(adversarial, torch.Tensor):
            total = reduce_sum(trainer, adversarial.detach().double().reshape(1)).item()
            values[tags.TRAIN_LOSS_ADV] = total / trainer.world_size
        self._record(trainer, None, values, log=False)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        values = quality_values(trainer.callback_metrics)
        if values:
            self._record(trainer, None, values, log=False)
            self._raise(trainer, {"DISCRIMINATOR_OVERPOWERING": discriminator_overpowering(self.history)})

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # An epoch's batches after its last logging step count in the next interval's means: only logged values are
        # rounds, as in the logs.
        self._raise(
            trainer,
            {
                "DISCRIMINATOR_AT_CHANCE": discriminator_at_chance(self.history),
                "FEATURE_MATCHING_VANISHED": feature_matching_vanished(self.history),
                "DISCRIMINATOR_FROZEN": discriminator_frozen(self.history),
            },
        )
        self._compact()

    def _compact(self) -> None:
        """Keep the history growing with the epochs and validation rounds, not the logging steps
        (`callbacks/median_thinning.py`, `callbacks/history_compaction.py`). The rules read the discriminator loss
        and the logged loss-to-chance ratio as epoch medians and as medians between validation rounds; the chance
        value, the update ratio and the margin as medians over the epochs of the discriminator loss (or, until a closed
        epoch has a finite loss-to-chance ratio, of the logged ratio, so over both);
        the generator loss over the epochs of the feature-matching loss (its own epoch medians); the adversarial term
        only between validation rounds; and the update ratio also through its runs under the frozen threshold
        (pinned). The validation rounds are those of the quality metric the history holds now; a run whose quality
        metric changes (a higher-ranked candidate first logged after some rounds) is read on other rounds."""
        chosen = quality_metric(self.history)
        rounds = [p for p in self.history.series(chosen[0]) if math.isfinite(p.value)] if chosen else []
        epochs = [
            r for r in (self.history.per_epoch(tags.TRAIN_LOSS_D), self.history.per_epoch(tags.D_LOSS_TO_CHANCE)) if r
        ]
        loss_epochs, ratios, chance = chance_ratios_per_epoch(self.history)
        if any(c is not None for c in chance) and any(math.isfinite(r) for r in ratios[:-1]):
            epochs = [loss_epochs]  # a closed epoch's ratio is finite: the rule reads the discriminator loss's epochs
        fm_epochs = [p for p in self.history.per_epoch(tags.TRAIN_LOSS_FM) if math.isfinite(p.value)]
        thin = functools.partial(thin_keeping_medians, recent=RECENT_POINTS)
        thin(self.history, tags.TRAIN_LOSS_D, split_rounds=rounds)
        thin(self.history, tags.D_LOSS_TO_CHANCE, split_rounds=rounds)
        thin(
            self.history,
            tags.D_LOSS_CHANCE,
            exact_rounds=epochs[:1] if self.history.has(tags.TRAIN_LOSS_D) else [],
            split_rounds=rounds,
        )
        thin(self.history, tags.D_UPDATE_RATIO, exact_rounds=epochs, pins=frozen_runs)
        thin(self.history, tags.D_MARGIN, exact_rounds=epochs)
        thin(self.history, tags.TRAIN_LOSS_FM)
        thin(self.history, tags.TRAIN_LOSS_G, exact_rounds=[fm_epochs])
        if rounds:
            compact_between_rounds(self.history, tags.TRAIN_LOSS_ADV, rounds, median_at_round, RECENT_POINTS)

    def _flush(self, trainer: Trainer, pl_module: LightningModule) -> None:
        sums = self._sums.flush(trainer)
        means = {term: sums[term] / sums[term + "_n"] for term in TERMS if sums[term + "_n"] > 0}
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
        self._record(trainer, pl_module, values)

    def _rank_local_sums(self) -> list[RunningSums]:
        return [self._sums]

    def _extra_state(self) -> dict[str, Any]:
        return {"sums": self._sums.state_dict(), "early_fm": self.early_fm}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self._sums.load_state_dict(state["sums"])
        self.early_fm = state["early_fm"]


def frozen_runs(points: list[Point]) -> list[bool]:
    """The update ratios DISCRIMINATOR_FROZEN reads: of each run of finite ratios under its threshold, the first
    FROZEN_PATIENCE and the last; one of each run over it."""
    labels = flag_runs(lambda v: v < FROZEN_RATIO, finite_only=True)
    return run_ends_kept(points, labels, flag_run_ends(FROZEN_PATIENCE))
