"""Why a finding whose condition cleared is reported as info (`codecgan.diagnosis.trends.settle`)."""

from __future__ import annotations

from typing import Any, Mapping

from codecgan.diagnosis.wording.phrases import where


def cleared(note: Mapping[str, Any]) -> str:
    if note["last_held"] is None:
        return "It has cleared since, so it is reported as info."
    run = f" for {note['patience']} rounds in a row" if note["patience"] > 1 else ""
    return f"It last held{run} at {where(note['last_held'])} and not since, so it is reported as info."


INFO_NOTES = {"cleared": cleared}
