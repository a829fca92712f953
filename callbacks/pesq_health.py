"""PesqHealth: how often PESQ cannot be computed, and so how often the metric discriminator loses its signal."""

from __future__ import annotations

from typing import Any, Mapping

from lightning.pytorch import LightningModule, Trainer

from callbacks.base import DiagnosticCallback
from callbacks.running_sums import RunningSums
from callbacks.sync_moments import always, at_logging_steps
from codecgan.cadence import is_logging_step
from codecgan.diagnosis import tags
from codecgan.diagnosis.rules import pesq_none_high
from codecgan.metrics.pesq_worker import FAILURE_KINDS

COUNTS = ("batches", "dropped_batches", "clips", "failed_clips")


class PesqHealth(DiagnosticCallback):
    """Measures the PESQ-None rate of the enhancement family's training steps.

    From the `training_step` outputs `pesq_dropped_batch`, `pesq_clips` and `pesq_failed_clips` it logs, per logging
    interval, `diag/pesq_none_rate` (the fraction of batches whose metric-discriminator term was dropped) and
    `diag/pesq_clip_fail_rate` (the fraction of clips without a PESQ score), and the same per epoch with an `_epoch`
    suffix. Why: MetricGAN-style recipes drop a whole batch's discriminator update when one clip fails (a silent crop
    has no PESQ), so a high rate starves the metric discriminator. Catches PESQ_NONE_HIGH.

    Why clips fail, from `pesq_failures` (clips per kind of `FAILURE_KINDS`: `too_short`, `too_long`, `nonfinite`,
    `silent_estimate`, `no_utterances`, `timeout`, `worker_died`, `other`): per logging interval,
    `diag/pesq_failed_clips/<kind>`, the clips of that kind, for each kind the run has met (from the first interval
    that had one, zeros included after it); the run's totals are `failure_counts`.

    Under DDP the counts are summed over ranks before dividing (a "batch" is one rank's batch), so the rates equal
    those of the same batches scored in one process. Batches without these keys are ignored.
    """

    codes = ("PESQ_NONE_HIGH",)
    sync_moments = {"on_train_batch_end": at_logging_steps, "on_train_epoch_end": always}

    def __init__(self) -> None:
        super().__init__()
        self._interval = RunningSums(COUNTS + FAILURE_KINDS)  # one all-reduce per logging step for all of them
        self.epoch_counts = dict.fromkeys(COUNTS, 0.0)
        self.total_counts = dict.fromkeys(COUNTS, 0.0)
        self.failure_counts = dict.fromkeys(FAILURE_KINDS, 0.0)  # the run's failed clips per kind, all ranks
        self._active = False  # set by the first batch with PESQ counts; the same on every rank, so collectives agree

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if isinstance(outputs, Mapping) and "pesq_dropped_batch" in outputs:
            self._active = True
            self._interval.add("batches", 1)
            self._interval.add("dropped_batches", outputs["pesq_dropped_batch"])  # 0/1, a number or a device tensor
            self._interval.add("clips", int(outputs.get("pesq_clips", 0)))
            self._interval.add("failed_clips", int(outputs.get("pesq_failed_clips", 0)))
            for kind, clips in outputs.get("pesq_failures", {}).items():
                self._interval.add(kind, int(clips))
        if self._active and is_logging_step(trainer):
            counts = self._fold(trainer)
            if counts["batches"] > 0:
                self._record(trainer, pl_module, {**self._rates(counts, ""), **self._kinds_met(counts)})
            self._raise(trainer, {"PESQ_NONE_HIGH": pesq_none_high(self.history)})
            self.alarms.log_active(pl_module)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self._active:
            return
        self._fold(trainer)
        if self.epoch_counts["batches"] > 0:
            self._record(trainer, pl_module, self._rates(self.epoch_counts, "_epoch"), on_epoch=True)
        self.epoch_counts = dict.fromkeys(COUNTS, 0.0)

    def _fold(self, trainer: Trainer) -> dict[str, float]:
        """Sum this interval's counts over ranks and add them to the epoch's and the run's counts."""
        counts = self._interval.flush(trainer)
        for name in COUNTS:
            self.epoch_counts[name] += counts[name]
            self.total_counts[name] += counts[name]
        for kind in FAILURE_KINDS:
            self.failure_counts[kind] += counts[kind]
        return counts

    def _kinds_met(self, counts: Mapping[str, float]) -> dict[str, float]:
        """This interval's failed clips per kind, for the kinds the run has met (the same on every rank)."""
        return {
            tags.PESQ_FAILED_CLIPS_PREFIX + kind: counts[kind] for kind in FAILURE_KINDS if self.failure_counts[kind]
        }

    @staticmethod
    def _rates(counts: Mapping[str, float], suffix: str) -> dict[str, float]:
        rates = {tags.PESQ_NONE_RATE + suffix: counts["dropped_batches"] / counts["batches"]}
        if counts["clips"] > 0:
            rates[tags.PESQ_CLIP_FAIL_RATE + suffix] = counts["failed_clips"] / counts["clips"]
        return rates

    @property
    def none_rate(self) -> float:
        """The run's fraction of batches whose metric-discriminator term was dropped (all ranks, folded intervals)."""
        return self.total_counts["dropped_batches"] / max(self.total_counts["batches"], 1.0)

    def _rank_local_sums(self) -> list[RunningSums]:
        return [self._interval]

    def _extra_state(self) -> dict[str, Any]:
        return {
            "interval": self._interval.state_dict(),
            "epoch_counts": dict(self.epoch_counts),
            "total_counts": dict(self.total_counts),
            "failure_counts": dict(self.failure_counts),
        }

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self._interval.load_state_dict(state["interval"])
        self.epoch_counts = dict(state["epoch_counts"])
        self.total_counts = dict(state["total_counts"])
        self.failure_counts = {**dict.fromkeys(FAILURE_KINDS, 0.0), **state.get("failure_counts", {})}
