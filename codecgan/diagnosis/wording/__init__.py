"""The words of every finding, in one place: each rule's values rendered as the evidence sentence and the suggestion.

Rules (`codecgan.diagnosis.rules`) return numbers only; this package turns them into the English that `codecgan
diagnose`, the live alarms and TensorBoard show. One module per rule module, each with `WORDING` ({code: function of
the values returning (evidence, suggestion)}) and `INFO_NOTES` ({reason: function of the note's values returning the
sentence that says why a finding is reported as info}).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple

from codecgan.diagnosis.wording import (
    adversarial,
    discriminator_balance,
    loss_terms,
    quality,
    replay,
    resume,
    schedule_and_data,
    settling,
    training_health,
)

Values = Mapping[str, Any]

MODULES = (
    training_health,
    quality,
    adversarial,
    loss_terms,
    replay,
    discriminator_balance,
    schedule_and_data,
    resume,
)
WORDING: dict[str, Callable[[Values], tuple[str, str]]] = {
    code: words for module in MODULES for code, words in module.WORDING.items()
}
INFO_NOTES: dict[str, Callable[[Values], str]] = {
    reason: words for module in (settling, *MODULES) for reason, words in module.INFO_NOTES.items()
}

# The key of a finding's values under which `codecgan.diagnosis.trends.as_info` records why it is info.
REPORTED_AS_INFO = "reported_as_info"


class Wording(NamedTuple):
    evidence: str
    suggestion: str


def render(code: str, values: Values, run: str | None = None) -> Wording:
    """The evidence and suggestion of a finding with `code` and `values` (from run `run`, when given)."""
    evidence, suggestion = WORDING[code](values)
    note = values.get(REPORTED_AS_INFO)
    if note is not None:
        evidence = f"{evidence} {INFO_NOTES[note['reason']](note)}"
    if run is not None:
        evidence = f"In run {run}, {evidence}"
    return Wording(evidence, suggestion)
