"""MetricDiscriminatorMonitor: does the metric discriminator predict the PESQ it is trained on?"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch
from lightning.pytorch import LightningModule, Trainer

from callbacks.base import DiagnosticCallback
from callbacks.history_compaction import flag_run_ends, flag_runs, keep_recent, thin_runs
from callbacks.running_sums import RunningSums
from callbacks.sync_moments import always, at_logging_steps, outside_sanity_check
from codecgan.cadence import is_logging_step
from codecgan.diagnosis import tags
from codecgan.diagnosis.rules import metric_d_not_learning
from codecgan.diagnosis.rules.adversarial import (
    METRIC_D_MAX_MAE,
    METRIC_D_MIN_CORR,
    METRIC_D_PATIENCE,
    METRIC_D_WARMUP_POINTS,
)

SUMS = ("n", "abs_error", "pred", "target", "pred_sq", "target_sq", "pred_target")
# MetricGAN's normalisation of wideband PESQ to a [0, 1] target: (PESQ - 1) / 3.5.
PESQ_FLOOR = 1.0
PESQ_SPAN = 3.5
# How METRIC_D_NOT_LEARNING flags a training point: the correlation under its floor (NaN included), else the error.
NOT_TRACKING_CORR = flag_runs(lambda v: not v >= METRIC_D_MIN_CORR, skip_first=METRIC_D_WARMUP_POINTS)
NOT_TRACKING_MAE = flag_runs(lambda v: v > METRIC_D_MAX_MAE, skip_first=METRIC_D_WARMUP_POINTS)


def add_pairs(sums: RunningSums, prediction: torch.Tensor, target: torch.Tensor) -> None:
    """Accumulate the sums behind MAE and Pearson correlation over the pairs where both values are finite."""
    prediction, target = (
        prediction.detach().reshape(-1).double(),
        target.detach().reshape(-1).to(prediction.device).double(),
    )
    keep = torch.isfinite(prediction) & torch.isfinite(target)
    p, t = torch.where(keep, prediction, 0.0), torch.where(keep, target, 0.0)
    for name, value in zip(SUMS, (keep, (p - t).abs(), p, t, p * p, t * t, p * t)):
        sums.add(name, value)


def mae_and_correlation(sums: Mapping[str, float]) -> tuple[float, float]:
    """Mean absolute error and Pearson correlation from summed moments; NaN where undefined."""
    n = sums["n"]
    if n < 1:
        return math.nan, math.nan
    mean_p, mean_t = sums["pred"] / n, sums["target"] / n
    covariance = sums["pred_target"] / n - mean_p * mean_t
    var_p, var_t = sums["pred_sq"] / n - mean_p**2, sums["target_sq"] / n - mean_t**2
    corr = covariance / math.sqrt(var_p * var_t) if var_p > 1e-12 and var_t > 1e-12 else math.nan
    return sums["abs_error"] / n, corr


class MetricDiscriminatorMonitor(DiagnosticCallback):
    """Measures whether the metric discriminator learns: the mean absolute error and Pearson correlation between its
    prediction D(clean, estimate) and the true normalised PESQ.

    Training: from the outputs `metric_d_prediction` (the discriminator's prediction in eval mode, without the
    dropout its loss trains with, so the correlation measures the discriminator, not its dropout noise) and
    `pesq_target` (clips with a target only), per logging interval, as `diag/metric_d_mae` and `diag/metric_d_corr`.
    Validation: from `metric_d_prediction` and `pesq` (raw PESQ, normalised as (PESQ - 1) / 3.5), per round, as
    `diag/metric_d_mae_val` and `diag/metric_d_corr_val`.
    Why: a metric discriminator that does not track PESQ turns the metric-GAN term into noise. Catches
    METRIC_D_NOT_LEARNING. Under DDP the moments are summed over ranks before dividing, so the values equal those of
    the same clips scored in one process.
    """

    codes = ("METRIC_D_NOT_LEARNING",)
    sync_moments = {
        "on_train_batch_end": at_logging_steps,
        "on_train_epoch_end": always,
        "on_validation_epoch_end": outside_sanity_check,
    }

    def __init__(self) -> None:
        super().__init__()
        self._train = RunningSums(SUMS)
        self._validation = RunningSums(SUMS)
        self.total_train = dict.fromkeys(SUMS, 0.0)
        self._active = False

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if isinstance(outputs, Mapping) and "metric_d_prediction" in outputs and "pesq_target" in outputs:
            self._active = True
            add_pairs(self._train, outputs["metric_d_prediction"], outputs["pesq_target"])
        if self._active and is_logging_step(trainer):
            sums = self._fold_train(trainer)
            if sums["n"] > 0:
                mae, corr = mae_and_correlation(sums)
                self._record(trainer, pl_module, {tags.METRIC_D_MAE: mae, tags.METRIC_D_CORR: corr})
            self._raise(trainer, {"METRIC_D_NOT_LEARNING": metric_d_not_learning(self.history)})
            self.alarms.log_active(pl_module)
            self._compact()

    def _compact(self) -> None:
        """Keep the training series growing with the times the discriminator stops tracking PESQ, not with the steps
        (`callbacks/history_compaction.py`). METRIC_D_NOT_LEARNING flags each point after the first
        METRIC_D_WARMUP_POINTS (kept) by its value and reads the runs of flagged points (`flag_run_ends`) and the last
        point: of the correlation when it is logged, with the error then read only at its last point; else of the
        error."""
        if self.history.has(tags.METRIC_D_CORR):
            thin_runs(self.history, tags.METRIC_D_CORR, NOT_TRACKING_CORR, flag_run_ends(METRIC_D_PATIENCE))
            keep_recent(self.history, tags.METRIC_D_MAE)
        else:
            thin_runs(self.history, tags.METRIC_D_MAE, NOT_TRACKING_MAE, flag_run_ends(METRIC_D_PATIENCE))

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._active:  # the epoch's last partial interval counts in the totals (step values cannot be logged here)
            self._fold_train(trainer)

    def _fold_train(self, trainer: Trainer) -> dict[str, float]:
        sums = self._train.flush(trainer)
        for name, value in sums.items():
            self.total_train[name] += value
        return sums

    def on_validation_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if trainer.sanity_checking or not isinstance(outputs, Mapping):
            return
        if "metric_d_prediction" in outputs and "pesq" in outputs:
            target = (outputs["pesq"].detach().double() - PESQ_FLOOR) / PESQ_SPAN
            add_pairs(self._validation, outputs["metric_d_prediction"], target)

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking:
            self._validation.reset()
            return
        sums = self._validation.flush(trainer)
        if sums["n"] > 0:
            mae, corr = mae_and_correlation(sums)
            self._record(trainer, pl_module, {tags.METRIC_D_MAE_VAL: mae, tags.METRIC_D_CORR_VAL: corr}, on_epoch=True)

    @property
    def train_mae_and_correlation(self) -> tuple[float, float]:
        """Over every training clip with a target folded so far (all ranks)."""
        return mae_and_correlation(self.total_train)

    def _rank_local_sums(self) -> list[RunningSums]:
        return [self._train, self._validation]

    def _extra_state(self) -> dict[str, Any]:
        return {
            "train": self._train.state_dict(),
            "validation": self._validation.state_dict(),
            "total_train": dict(self.total_train),
        }

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self._train.load_state_dict(state["train"])
        self._validation.load_state_dict(state["validation"])
        self.total_train = dict(state["total_train"])
