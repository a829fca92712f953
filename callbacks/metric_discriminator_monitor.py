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
from codecgan.diagnosis.rules import metric_d_not_learning, replay_buffer_stalled
from codecgan.diagnosis.rules.adversarial import (
    METRIC_D_MAX_MAE,
    METRIC_D_MIN_CORR,
    METRIC_D_PATIENCE,
    METRIC_D_WARMUP_POINTS,
)

SUMS = ("n", "abs_error", "pred", "target", "pred_sq", "target_sq", "pred_target")
NOISY = "noisy_"  # the prefix of the noisy inputs' sums
# MetricGAN+'s: the moments on the noisy inputs, the items replayed, and the buffer's latest size (one per rank).
METRICGAN_PLUS_SUMS = tuple(NOISY + name for name in SUMS) + ("replay_items", "buffer_items")
# MetricGAN's normalisation of wideband PESQ to a [0, 1] target: (PESQ - 1) / 3.5.
PESQ_FLOOR = 1.0
PESQ_SPAN = 3.5
# How METRIC_D_NOT_LEARNING flags a training point: the correlation under its floor (NaN included), else the error.
NOT_TRACKING_CORR = flag_runs(lambda v: not v >= METRIC_D_MIN_CORR, skip_first=METRIC_D_WARMUP_POINTS)
NOT_TRACKING_MAE = flag_runs(lambda v: v > METRIC_D_MAX_MAE, skip_first=METRIC_D_WARMUP_POINTS)


def add_pairs(sums: RunningSums, prediction: torch.Tensor, target: torch.Tensor, prefix: str = "") -> None:
    """Accumulate the sums behind MAE and Pearson correlation over the pairs where both values are finite (into the
    sums named `prefix` + each of SUMS)."""
    prediction, target = (
        prediction.detach().reshape(-1).double(),
        target.detach().reshape(-1).to(prediction.device).double(),
    )
    keep = torch.isfinite(prediction) & torch.isfinite(target)
    p, t = torch.where(keep, prediction, 0.0), torch.where(keep, target, 0.0)
    for name, value in zip(SUMS, (keep, (p - t).abs(), p, t, p * p, t * t, p * t)):
        sums.add(prefix + name, value)


def mae_and_correlation(sums: Mapping[str, float], prefix: str = "") -> tuple[float, float]:
    """Mean absolute error and Pearson correlation from summed moments (those named `prefix` + each of SUMS); NaN
    where undefined."""
    sums = {name: sums[prefix + name] for name in SUMS}
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
    METRIC_D_NOT_LEARNING.

    MetricGAN+ (when the outputs hold its keys): its discriminator also learns the noisy inputs' PESQ
    (`metric_d_prediction_noisy`, `pesq_target_noisy`, [B] on the scale of `pesq_target`) and replays past enhanced
    clips (`replay_items`: items replayed in the step; `replay_buffer_items`: the buffer's items after it). Per logging
    interval it logs the mean absolute error on the enhanced clips and on the noisy inputs apart,
    `diag/metric_d_error/enhanced` (the clips of `diag/metric_d_mae`) and `diag/metric_d_error/noisy`, and
    `diag/replay_items` (items replayed in the interval) and `diag/replay_buffer_items` (the buffer's latest size);
    per epoch the replay values again with an `_epoch` suffix (the items replayed in the epoch, the buffer at its end),
    which REPLAY_BUFFER_STALLED reads. Without these keys none of them is logged.

    Under DDP every moment and count is summed over ranks before dividing, so the values equal those of the same clips
    scored in one process; the buffer's size is the sum of each rank's latest one (each rank keeps its own buffer).
    """

    codes = ("METRIC_D_NOT_LEARNING", "REPLAY_BUFFER_STALLED")
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
        # MetricGAN+'s keys: set by the first batch that has one (on every rank at the same batch, as `_active`).
        self._plus = RunningSums(METRICGAN_PLUS_SUMS)
        self._plus_active = False
        self._buffer_items: torch.Tensor | float | None = None  # this rank's latest replay-buffer size
        self.epoch_replay_items = 0.0  # items replayed in this epoch, all ranks, as folded so far

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if isinstance(outputs, Mapping) and "metric_d_prediction" in outputs and "pesq_target" in outputs:
            self._active = True
            add_pairs(self._train, outputs["metric_d_prediction"], outputs["pesq_target"])
        if isinstance(outputs, Mapping):
            self._add_metricgan_plus(outputs)
        if (self._active or self._plus_active) and is_logging_step(trainer):
            sums = self._fold_train(trainer)
            if sums["n"] > 0:
                mae, corr = mae_and_correlation(sums)
                self._record(trainer, pl_module, {tags.METRIC_D_MAE: mae, tags.METRIC_D_CORR: corr})
            if self._plus_active:
                plus = self._fold_metricgan_plus(trainer)
                self._write_step_values(trainer, pl_module, metricgan_plus_values(sums, plus))
            findings = {
                "METRIC_D_NOT_LEARNING": metric_d_not_learning(self.history),
                "REPLAY_BUFFER_STALLED": replay_buffer_stalled(self.history),
            }
            self._raise(trainer, findings)
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

    def _add_metricgan_plus(self, outputs: Mapping[str, Any]) -> None:
        """Add a batch's MetricGAN+ values, when it has them, to this interval's sums."""
        if "metric_d_prediction_noisy" in outputs and "pesq_target_noisy" in outputs:
            self._plus_active = True
            add_pairs(self._plus, outputs["metric_d_prediction_noisy"], outputs["pesq_target_noisy"], NOISY)
        if "replay_items" in outputs:
            self._plus_active = True
            self._plus.add("replay_items", outputs["replay_items"])
        if "replay_buffer_items" in outputs:
            self._plus_active = True
            self._buffer_items = outputs["replay_buffer_items"]

    def _fold_metricgan_plus(self, trainer: Trainer) -> dict[str, float]:
        """All ranks' MetricGAN+ sums of this interval (a collective), with the buffer's latest size summed over ranks;
        the replayed items are added to the epoch's."""
        if self._buffer_items is not None:
            self._plus.add("buffer_items", self._buffer_items)
        sums = self._plus.flush(trainer)
        self.epoch_replay_items += sums["replay_items"]
        return sums

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._active:  # the epoch's last partial interval counts in the totals (step values cannot be logged here)
            self._fold_train(trainer)
        if self._plus_active:
            buffer_items = self._fold_metricgan_plus(trainer)["buffer_items"]
            epoch_values = {
                tags.REPLAY_BUFFER_ITEMS + tags.EPOCH_SUFFIX: buffer_items,
                tags.REPLAY_ITEMS + tags.EPOCH_SUFFIX: self.epoch_replay_items,
            }
            self._record(trainer, pl_module, epoch_values, on_epoch=True)
            self.epoch_replay_items = 0.0
            self._raise(trainer, {"REPLAY_BUFFER_STALLED": replay_buffer_stalled(self.history)})

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
        return [self._train, self._validation, self._plus]

    def _extra_state(self) -> dict[str, Any]:
        buffer_items = None if self._buffer_items is None else float(self._buffer_items)
        return {
            "train": self._train.state_dict(),
            "validation": self._validation.state_dict(),
            "total_train": dict(self.total_train),
            "metricgan_plus": {
                "sums": self._plus.state_dict(),
                "active": self._plus_active,
                "buffer_items": buffer_items,
                "epoch_replay_items": self.epoch_replay_items,
            },
        }

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self._train.load_state_dict(state["train"])
        self._validation.load_state_dict(state["validation"])
        self.total_train = dict(state["total_train"])
        plus = state.get("metricgan_plus")  # absent from the checkpoints of runs without MetricGAN+'s keys
        if plus is not None:
            self._plus.load_state_dict(plus["sums"])
            self._plus_active, self._buffer_items = plus["active"], plus["buffer_items"]
            self.epoch_replay_items = plus["epoch_replay_items"]


def metricgan_plus_values(enhanced: Mapping[str, float], plus: Mapping[str, float]) -> dict[str, float]:
    """The step values of MetricGAN+'s keys from an interval's folded sums: the error on the enhanced clips and on the
    noisy inputs (each where the interval had clips), the items replayed and the buffer's size."""
    values = {tags.REPLAY_ITEMS: plus["replay_items"], tags.REPLAY_BUFFER_ITEMS: plus["buffer_items"]}
    if enhanced["n"] > 0:
        values[tags.METRIC_D_ERROR_ENHANCED] = mae_and_correlation(enhanced)[0]
    if plus[NOISY + "n"] > 0:
        values[tags.METRIC_D_ERROR_NOISY] = mae_and_correlation(plus, NOISY)[0]
    return values
