"""The plumbing every codecgan diagnostic callback shares: alarms, a metric history, the run's recorded settings, and
resumable state."""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from lightning.pytorch import LightningModule, Trainer

from callbacks.alarms import AlarmBook
from callbacks.guard import GuardedCallback
from callbacks.run_config import write_run_config
from callbacks.running_sums import RunningSums
from callbacks.sync_moments import log_epoch_value
from codecgan.cadence import logged_step
from codecgan.diagnosis.findings import Finding
from codecgan.diagnosis.history import MetricHistory


class DiagnosticCallback(GuardedCallback):
    """Base class: logs values on the batch axis (epoch values through `pl_module.log`, step values straight to the
    loggers, once each) and into `self.history`, runs the diagnosis rules on that history, and keeps each rule's alarm
    in step with its current finding.

    The history keeps every point unless a callback bounds it, so a rule's answer live is its answer on the run's logs.
    Where a step series would grow with a long run's logging steps, a callback bounds it only as far as its rules still
    answer as on every point, and keeps its newest points as logged (512; DiscriminatorHealth 1024):
    - LossSpikes (512 points per loss term, with the spikes found kept in its state) and ResumeContinuity (the resume
      rule's window, 33 points) keep only those.
    - DivergenceMonitor and LearningRateHealth keep before them a summary per validation interval that their rules
      read alike (`callbacks/history_compaction.py`): they grow with the rounds.
    - DiscriminatorHealth keeps, of each closed epoch before them, the points that keep its epoch medians and its
      medians between validation rounds (`callbacks/median_thinning.py`), and the ends of the update ratio's frozen
      stretches: it grows with the rounds (a few points per series and round).
    - GradientBalance, CodebookUsage and MetricDiscriminatorMonitor keep before them the ends of the stretches in which
      their rule's condition holds or fails (`thin_runs`): they grow with the times it changes. Their series read only
      at the last point (the codebook entropy in bits, the dead codes, the metric discriminator's training error) keep
      only the newest points.
    - Tags no rule reads are logged but not kept (`unread_tags`: DiscriminatorHealth's `diag/fm_to_early` and
      `diag/grad_norm_d`, GradientBalance's `diag/grad_norm_term/*`).
    Not bounded: PesqHealth's rates (its rule takes the median of every one), and the series of one point per
    validation round (SignalStats, EvalDeterminism, the quality values, the metric discriminator's validation values),
    which grow with the rounds. `python -m bench.history_growth` measures each per 100k steps.

    `codes` names the rules a callback evaluates; `rule_settings()` gives the settings they run with, which the first
    diagnostic callback of the run writes, with every diagnostic callback's constructor arguments and the model family,
    into the text entry `diag/config` when training starts (rank 0), for `codecgan diagnose` to use.

    `state_dict()` holds the alarms, the history and whatever `_extra_state()` returns, all tensors and Python
    primitives, so a resumed run continues its windows and alarms exactly. Sums not yet reduced across ranks are
    rank 0's in a checkpoint; after a DDP resume the other ranks start those from zero (a single process resumes
    exactly).

    Every hook runs guarded (`callbacks/guard.py`): an exception in it, or in a rule it runs, disables this callback
    on every rank instead of ending the run. A subclass names in `sync_moments` the hook invocations in which it
    performs collectives, and performs them through `callbacks/distributed.py`.
    """

    codes: tuple[str, ...] = ()
    # Prefixes of tags a callback logs but does not keep in its history: no rule reads them.
    unread_tags: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.alarms = AlarmBook()
        self.history = MetricHistory()

    def _record(
        self,
        trainer: Trainer,
        pl_module: LightningModule | None,
        values: dict[str, float],
        on_epoch: bool = False,
        log: bool = True,
    ) -> None:
        """Add `values` but the `unread_tags` to the history at this step and epoch, and log them all (already
        reduced across ranks): epoch values with `log_epoch_value` (no `sync_dist`: they are alike on every rank), step
        values with `_write_step_values` at this step (any batch: a measurement taken every N batches is written at the
        step it was taken)."""
        step, epoch = logged_step(trainer), trainer.current_epoch
        for tag, value in values.items():
            if not tag.startswith(self.unread_tags):
                self.history.add(tag, value, step, epoch)
        if log and on_epoch:
            for tag, value in values.items():
                log_epoch_value(pl_module, tag, value)
        elif log:
            self._write_step_values(trainer, pl_module, values)

    @staticmethod
    def _write_step_values(trainer: Trainer, pl_module: LightningModule, values: dict[str, float]) -> None:
        """Write step values to the loggers once, at this step, with the epoch (as Lightning writes its own).

        Not through `pl_module.log`: Lightning writes step values only at logging steps, and writes a value again at
        every later logging step of the epoch where it is not logged anew, so a value measured only on some steps (a
        discriminator margin when D stepped, a measurement every N steps) would be lost or reach TensorBoard many
        times, and count as that many points in `codecgan diagnose` but once in the callback's history.
        `pl_module.log(logger=False)` still puts it in `callback_metrics`.
        """
        for tag, value in values.items():
            pl_module.log(tag, value, on_step=True, on_epoch=False, batch_size=1, logger=False)
        for logger in trainer.loggers:  # loggers write on rank 0 only
            logger.log_metrics({**values, "epoch": trainer.current_epoch}, step=logged_step(trainer))

    def rule_settings(self) -> dict[str, dict[str, Any]]:
        """{code: keyword arguments} this callback passes to its rules beyond the history (JSON values); the same
        arguments `codecgan diagnose` passes when it reads them from `diag/config`."""
        return {}

    def _raise(
        self, trainer: Trainer, findings: Mapping[str, Finding | None] | Iterable[Finding | None]
    ) -> list[Finding]:
        """Update the alarms of the rules just evaluated (`AlarmBook.update`): start, re-grade or clear them; returns
        the alarms that started. Pass {code: finding or None} so that a rule that finds nothing clears its alarm."""
        return self.alarms.update(trainer, findings)

    def _rank_local_sums(self) -> list[RunningSums]:
        """Sums not yet reduced across ranks; a checkpoint holds rank 0's, so other ranks drop them on resume."""
        return []

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.global_rank != 0:
            for sums in self._rank_local_sums():
                sums.reset()
        # After the checkpoint is restored, so a resumed run records its settings at the step it resumed from.
        diagnostic = [callback for callback in trainer.callbacks if isinstance(callback, DiagnosticCallback)]
        if trainer.is_global_zero and diagnostic and diagnostic[0] is self:
            write_run_config(trainer, pl_module, diagnostic)

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {
            "alarms": self.alarms.state_dict(),
            "history": self.history.state_dict(),
            **self._extra_state(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.alarms.load_state_dict(state_dict["alarms"])
        cap = self.history.max_points  # this callback's own, whatever the checkpoint's history was built with
        self.history.load_state_dict(state_dict["history"])
        self.history.max_points = cap
        self._load_extra_state(state_dict)


def require(condition: bool, message: str) -> None:
    """Raise ValueError(message) unless `condition`; for argument checks in callbacks' `__init__`."""
    if not condition:
        raise ValueError(message)
