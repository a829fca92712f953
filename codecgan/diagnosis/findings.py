"""The unit of a diagnosis: one named failure, with its numbers and the experiment that would confirm it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

SEVERITIES = ("info", "warning", "critical")


@dataclass(frozen=True)
class Finding:
    """A failure a rule found in a metric history.

    `code` is stable across releases (e.g. "LOSS_METRIC_DIVERGENCE"); `first_step`/`first_epoch` are where the
    rule's condition first held (None when the history has no such axis); `evidence` is a complete sentence with
    the numbers; `suggestion` names the config switch or experiment that would confirm the hypothesis.
    """

    code: str
    severity: str
    first_step: int | None
    first_epoch: int | None
    evidence: str
    suggestion: str

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"Finding severity {self.severity!r} is not one of {', '.join(SEVERITIES)}.")

    @property
    def severity_rank(self) -> int:
        """0 for info, 1 for warning, 2 for critical."""
        return SEVERITIES.index(self.severity)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: keys code, severity, first_step, first_epoch, evidence, suggestion."""
        return asdict(self)
