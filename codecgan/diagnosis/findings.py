"""The unit of a diagnosis: one named failure, with its numbers and the experiment that would confirm it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from codecgan.diagnosis.wording import render

SEVERITIES = ("info", "warning", "critical")


@dataclass(frozen=True)
class Finding:
    """A failure a rule found in a metric history.

    `code` is stable across releases (e.g. "LOSS_METRIC_DIVERGENCE"); `first_step`/`first_epoch` are where the
    rule's condition first held (None when the history has no such axis); `values` are the numbers the rule measured,
    by name (positions as {"epoch", "step"} mappings, see `position`); `run` names the run it came from when a report
    covers several. Rules return data only: `evidence` (a complete sentence with the numbers) and `suggestion` (the
    config switch or experiment that would confirm the hypothesis) are rendered from `values` by
    `codecgan.diagnosis.wording`, the one place that words findings.
    """

    code: str
    severity: str
    first_step: int | None
    first_epoch: int | None
    values: Mapping[str, Any] = field(default_factory=dict)
    run: str | None = None

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"Finding severity {self.severity!r} is not one of {', '.join(SEVERITIES)}.")

    @property
    def severity_rank(self) -> int:
        """0 for info, 1 for warning, 2 for critical."""
        return SEVERITIES.index(self.severity)

    @property
    def evidence(self) -> str:
        return render(self.code, self.values, self.run).evidence

    @property
    def suggestion(self) -> str:
        return render(self.code, self.values, self.run).suggestion

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: keys code, severity, first_step, first_epoch, evidence, suggestion and evidence_values (the
        rule's numbers as numbers; NaN and infinities as null), plus run when the finding names one."""
        wording = render(self.code, self.values, self.run)
        return {
            "code": self.code,
            "severity": self.severity,
            "first_step": self.first_step,
            "first_epoch": self.first_epoch,
            **({"run": self.run} if self.run is not None else {}),
            "evidence": wording.evidence,
            "suggestion": wording.suggestion,
            "evidence_values": json_safe(self.values),
        }


def position(point: Any) -> dict[str, int | None]:
    """A history point's place, {"epoch": ..., "step": ...}, for a finding's values."""
    return {"epoch": point.epoch, "step": point.step}


def json_safe(value: Any) -> Any:
    """`value` with mappings as dicts, sequences as lists and non-finite floats as None (JSON has no NaN)."""
    if isinstance(value, Mapping):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
