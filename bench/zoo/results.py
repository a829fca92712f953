"""What the zoo keeps of one run: its exit, its diagnosis and its confirmation (`ZooResult`), and its metric
history read back from TensorBoard."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from codecgan.diagnosis.history import HistoryError, MetricHistory, load_histories


@dataclass
class ZooResult:
    """One run: what happened and what the diagnosis found."""

    name: str
    base: str
    hypothesis: str
    expected: str | None
    fault_step: int
    max_steps: int | None
    exit_status: int | None
    wall_s: float
    log_dir: str
    findings: list[dict] = field(default_factory=list)
    error: str | None = None  # the last error line of a failed run
    d_loss_to_chance: float | None = None  # median of diag/d_loss_to_chance over the last epoch
    live_alarms: list[str] = field(default_factory=list)  # the alarms at 1 when the run's logs end
    confirm: list[dict] = field(default_factory=list)  # `codecgan confirm --json` of the run (expected code only)
    confirm_wall_s: float | None = None

    def confirm_verdict(self) -> str:
        """The expected code's verdict (the last experiment run); for a control, `no finding` or what confirm said."""
        if self.is_control:
            return ", ".join(f"{v['code']}: {v['verdict']}" for v in self.confirm) or "no finding"
        verdicts = [v for v in self.confirm if v["code"] == self.expected]
        return verdicts[-1]["verdict"] if verdicts else "not run"

    @property
    def codes_above_info(self) -> list[str]:
        return [f["code"] for f in self.findings if f["severity"] != "info"]

    @property
    def is_control(self) -> bool:
        return self.expected is None

    @property
    def false_alarms(self) -> list[str]:
        return self.codes_above_info if self.is_control else []

    def detection(self) -> tuple[bool | None, int | None]:
        """(detected, latency in steps after the fault began); (None, None) for a control."""
        if self.is_control:
            return None, None
        for finding in self.findings:
            if finding["code"] == self.expected and finding["severity"] != "info":
                step = finding["first_step"]
                return True, (None if step is None else step - self.fault_step)
        return False, None


def read_history(log_dir: Path) -> MetricHistory | None:
    """The metric history logged under `log_dir`; None when there is none (a run that stopped before logging)."""
    try:
        histories = load_histories(str(log_dir))
    except HistoryError:
        return None
    return histories[0][1] if histories else None
