"""Alarms: a finding from a live rule, announced once when it starts and held at 1 from then on.

An alarm starts with a console warning on rank 0, a TensorBoard text entry under `diag/alarms`, and the scalar
`diag/alarm/<CODE>` = 1 at that step; the owning callback logs the scalar again at each of its logging points.
"""

from __future__ import annotations

from typing import Any, Iterable

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_warn

from codecgan.cadence import logged_step
from codecgan.diagnosis.findings import Finding
from codecgan.diagnosis.tags import ALARM_PREFIX

ALARM_TEXT_TAG = "diag/alarms"


def alarm_message(finding: Finding) -> str:
    return f"codecgan {finding.severity} {finding.code}: {finding.evidence} To confirm: {finding.suggestion}"


class AlarmBook:
    """The alarms one callback has raised, by code; info-level findings never raise an alarm."""

    def __init__(self) -> None:
        self.active: dict[str, dict[str, Any]] = {}

    def raise_new(self, trainer: Trainer, findings: Iterable[Finding | None]) -> list[Finding]:
        """Announce the findings whose code is not active yet and return them.

        Call on every rank with the same findings."""
        started = []
        for finding in findings:
            if finding is None or finding.severity == "info" or finding.code in self.active:
                continue
            step = logged_step(trainer)
            self.active[finding.code] = {"step": step, "epoch": trainer.current_epoch, **finding.to_dict()}
            rank_zero_warn(alarm_message(finding))
            for logger in trainer.loggers:  # loggers write on rank 0 only
                if isinstance(logger, TensorBoardLogger):
                    logger.experiment.add_text(
                        ALARM_TEXT_TAG,
                        f"**{finding.code}** ({finding.severity}): "
                        f"{finding.evidence}\n\n*To confirm:* {finding.suggestion}",
                        step,
                    )
                logger.log_metrics({ALARM_PREFIX + finding.code: 1.0}, step=step)
            started.append(finding)
        return started

    def log_active(self, pl_module: LightningModule, on_epoch: bool = False) -> None:
        """Log `diag/alarm/<CODE>` = 1 for every active alarm (from a training-batch hook, or an epoch-end hook)."""
        for code in sorted(self.active):
            pl_module.log(
                ALARM_PREFIX + code, 1.0, on_step=not on_epoch, on_epoch=on_epoch, sync_dist=on_epoch, batch_size=1
            )

    def state_dict(self) -> dict[str, Any]:
        return {"active": {code: dict(record) for code, record in self.active.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.active = {code: dict(record) for code, record in state["active"].items()}
