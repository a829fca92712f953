"""Alarms: the live state of each rule a callback evaluates, announced when it starts, changes severity or clears.

An alarm starts when its rule's finding is above info: a console warning on rank 0, a TensorBoard text entry under
`diag/alarms`, and the scalar `diag/alarm/<CODE>` = 1 at that step. It clears when a later evaluation of the same rule
finds nothing or only info (the condition settled, see `codecgan.diagnosis.trends.settle`): `diag/alarm/<CODE>` = 0
at that step, a text entry "cleared" with the settled finding's numbers, and a console line on rank 0. A cleared
alarm starts again if its rule holds again. The owning callback logs every alarm it has raised at each of its logging
points (1 while active, 0 once cleared), so the scalar at the end of a run says which alarms are active then, as
`codecgan diagnose` says of the same logs.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from callbacks.sync_moments import log_epoch_value
from codecgan.cadence import logged_step
from codecgan.diagnosis.findings import Finding
from codecgan.diagnosis.tags import ALARM_PREFIX

ALARM_TEXT_TAG = "diag/alarms"


def alarm_message(finding: Finding) -> str:
    return f"codecgan {finding.severity} {finding.code}: {finding.evidence} To confirm: {finding.suggestion}"


def _evaluated(findings: Mapping[str, Finding | None] | Iterable[Finding | None]) -> dict[str, Finding | None]:
    """Code -> current finding. A mapping names every code evaluated (None: the rule found nothing); from a plain
    list only the findings' own codes are known, so a None there clears nothing."""
    if isinstance(findings, Mapping):
        return dict(findings)
    return {finding.code: finding for finding in findings if finding is not None}


class AlarmBook:
    """The alarms one callback has raised, by code: `active` (started and not cleared since) and `cleared` (started
    before and cleared since). Info-level findings never start an alarm."""

    def __init__(self) -> None:
        self.active: dict[str, dict[str, Any]] = {}
        self.cleared: dict[str, dict[str, Any]] = {}

    def update(
        self, trainer: Trainer, findings: Mapping[str, Finding | None] | Iterable[Finding | None]
    ) -> list[Finding]:
        """Bring the alarms of the evaluated codes in line with their current findings; return those that started.

        `findings`: the current finding of each rule the caller just evaluated, as {code: finding or None}, or as a
        list of findings (None entries are skipped). An active code whose finding is None or info is cleared; an
        active code whose finding changed severity is announced again with the new severity. Call on every rank
        with the same findings."""
        started = []
        step, epoch = logged_step(trainer), trainer.current_epoch
        for code, finding in _evaluated(findings).items():
            holds = finding is not None and finding.severity != "info"
            if holds and code not in self.active:
                self.cleared.pop(code, None)
                self.active[code] = {"step": step, "epoch": epoch, **finding.to_dict()}
                rank_zero_warn(alarm_message(finding))
                self._write(trainer, code, 1.0, f"**{code}** ({finding.severity}): {self._details(finding)}", step)
                started.append(finding)
            elif holds and finding.severity != self.active[code]["severity"]:
                before = self.active[code]["severity"]
                self.active[code].update(severity=finding.severity, evidence=finding.evidence)
                rank_zero_warn(f"codecgan {code} is now {finding.severity} (was {before}): {finding.evidence}")
                text = f"**{code}** is now {finding.severity} (was {before}): {self._details(finding)}"
                self._write(trainer, code, 1.0, text, step)
            elif not holds and code in self.active:
                record = self.active.pop(code)
                why = finding.evidence if finding is not None else "Its rule no longer finds it."
                self.cleared[code] = {"step": step, "epoch": epoch, "started_step": record["step"], "evidence": why}
                severity, start = record["severity"], record["step"]
                since = f"({severity}, active since step {start}) cleared at step {step} (epoch {epoch})"
                rank_zero_info(f"codecgan {code} {since}: {why}")
                self._write(trainer, code, 0.0, f"**{code}** {since}: {why}", step)
        return started

    @staticmethod
    def _details(finding: Finding) -> str:
        return f"{finding.evidence}\n\n*To confirm:* {finding.suggestion}"

    @staticmethod
    def _write(trainer: Trainer, code: str, value: float, text: str, step: int) -> None:
        for logger in trainer.loggers:  # loggers write on rank 0 only
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_text(ALARM_TEXT_TAG, text, step)
            logger.log_metrics({ALARM_PREFIX + code: value}, step=step)

    def log_active(self, pl_module: LightningModule, on_epoch: bool = False) -> None:
        """Log `diag/alarm/<CODE>` for every alarm raised so far: 1 while active, 0 once cleared (from a
        training-batch hook, or an epoch-end hook). Lightning writes a step value again at later logging steps of
        the epoch, so a cleared alarm must be logged as 0, not left out."""
        for code in sorted({*self.active, *self.cleared}):
            value = 1.0 if code in self.active else 0.0
            if on_epoch:  # alike on every rank: no sync_dist
                log_epoch_value(pl_module, ALARM_PREFIX + code, value)
            else:
                pl_module.log(ALARM_PREFIX + code, value, on_step=True, on_epoch=False, sync_dist=False, batch_size=1)

    def state_dict(self) -> dict[str, Any]:
        return {
            "active": {code: dict(record) for code, record in self.active.items()},
            "cleared": {code: dict(record) for code, record in self.cleared.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.active = {code: dict(record) for code, record in state["active"].items()}
        self.cleared = {code: dict(record) for code, record in state.get("cleared", {}).items()}
