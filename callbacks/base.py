"""The plumbing every codecgan diagnostic callback shares: alarms, a small metric history, and resumable state."""

from __future__ import annotations

from typing import Any, Iterable

from lightning.pytorch import Callback, LightningModule, Trainer

from callbacks.alarms import AlarmBook
from codecgan.cadence import logged_step
from callbacks.running_sums import RunningSums
from codecgan.diagnosis.findings import Finding
from codecgan.diagnosis.history import MetricHistory

# Points kept per tag in a callback's own history: enough for every rule's window, small in a checkpoint.
HISTORY_POINTS = 512


class DiagnosticCallback(Callback):
    """Base class: logs values through `pl_module.log` (so they land on the batch axis) and into `self.history`,
    runs the diagnosis rules on that history, and raises each finding once as an alarm.

    `state_dict()` holds the alarms, the history and whatever `_extra_state()` returns, all tensors and Python
    primitives, so a resumed run continues its windows and alarms exactly. Sums not yet reduced across ranks are
    rank 0's in a checkpoint; after a DDP resume the other ranks start those from zero (a single process resumes
    exactly).
    """

    def __init__(self) -> None:
        self.alarms = AlarmBook()
        self.history = MetricHistory(max_points=HISTORY_POINTS)
        self._pending: dict[str, float] = {}

    def _record(
        self,
        trainer: Trainer,
        pl_module: LightningModule | None,
        values: dict[str, float],
        on_epoch: bool = False,
        log: bool = True,
    ) -> None:
        """Add `values` to the history at this step and epoch, and log them (already reduced across ranks)."""
        step, epoch = logged_step(trainer), trainer.current_epoch
        for tag, value in values.items():
            self.history.add(tag, value, step, epoch)
            if log:
                pl_module.log(tag, value, on_step=not on_epoch, on_epoch=on_epoch, sync_dist=on_epoch, batch_size=1)

    def _record_deferred(self, trainer: Trainer, values: dict[str, float]) -> None:
        """Add `values` to the history now and log them at the next logging step (measurements every N steps need
        not fall on Lightning's logging steps, and step values logged elsewhere are never written)."""
        self._record(trainer, None, values, log=False)
        self._pending.update(values)

    def _log_deferred(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Write the pending measurements to the loggers once, at this logging step.

        Not through `pl_module.log` alone: Lightning writes a step value again at every later logging step of the
        epoch, so a measurement taken every N steps would reach TensorBoard many times and count as that many
        measurements in `codecgan diagnose`. `pl_module.log(logger=False)` still puts it in `callback_metrics`.
        """
        if not self._pending:
            return
        for tag, value in self._pending.items():
            pl_module.log(tag, value, on_step=True, on_epoch=False, batch_size=1, logger=False)
        for logger in trainer.loggers:  # loggers write on rank 0 only
            logger.log_metrics(dict(self._pending), step=logged_step(trainer))
        self._pending = {}

    def _raise(self, trainer: Trainer, findings: Iterable[Finding | None]) -> list[Finding]:
        return self.alarms.raise_new(trainer, findings)

    def _rank_local_sums(self) -> list[RunningSums]:
        """Sums not yet reduced across ranks; a checkpoint holds rank 0's, so other ranks drop them on resume."""
        return []

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.global_rank != 0:
            for sums in self._rank_local_sums():
                sums.reset()

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {
            "alarms": self.alarms.state_dict(),
            "history": self.history.state_dict(),
            "pending": dict(self._pending),
            **self._extra_state(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.alarms.load_state_dict(state_dict["alarms"])
        self.history.load_state_dict(state_dict["history"])
        self._pending = dict(state_dict.get("pending", {}))
        self._load_extra_state(state_dict)


def require(condition: bool, message: str) -> None:
    """Raise ValueError(message) unless `condition`; for argument checks in callbacks' `__init__`."""
    if not condition:
        raise ValueError(message)
