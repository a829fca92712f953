"""Robust trend helpers shared by the rules: medians, Theil–Sen slopes, decibels, sustained and settled conditions."""

from __future__ import annotations

import dataclasses
import math
import statistics
from typing import Any, Sequence

from codecgan.diagnosis.findings import Finding, position
from codecgan.diagnosis.history import Point
from codecgan.diagnosis.wording import REPORTED_AS_INFO

# Theil–Sen is O(n^2); the last few hundred rounds are plenty for a trend.
MAX_TREND_POINTS = 200


def finite(values: Sequence[float | None]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def median(values: Sequence[float | None]) -> float:
    """Median of the finite values; NaN when there are none."""
    kept = finite(values)
    return float(statistics.median(kept)) if kept else math.nan


def theil_sen_slope(values: Sequence[float | None]) -> float:
    """Median of pairwise slopes of `values` against their index: a trend one outlier cannot flip. NaN if < 2 points."""
    pairs = [(i, v) for i, v in enumerate(values) if v is not None and math.isfinite(v)][-MAX_TREND_POINTS:]
    slopes = [(vj - vi) / (j - i) for k, (i, vi) in enumerate(pairs) for j, vj in pairs[k + 1 :]]
    return float(statistics.median(slopes)) if slopes else math.nan


def first_sustained(flags: Sequence[bool], patience: int) -> int | None:
    """Index of the first element ending a run of `patience` consecutive True flags, or None."""
    run = 0
    for index, flag in enumerate(flags):
        run = run + 1 if flag else 0
        if run >= patience:
            return index
    return None


def decibels(ratio: float) -> float:
    """An amplitude ratio in dB (20·log10); -inf for 0."""
    return 20.0 * math.log10(ratio) if ratio > 0 else -math.inf


def last_sustained(flags: Sequence[bool], patience: int) -> int | None:
    """Index of the last element ending a run of `patience` consecutive True flags, or None."""
    run, last = 0, None
    for index, flag in enumerate(flags):
        run = run + 1 if flag else 0
        if run >= patience:
            last = index
    return last


def settle(finding: Finding, points: Sequence[Point], flags: Sequence[bool], patience: int) -> Finding:
    """`finding` as it stands at the end of the history: unchanged while its condition still holds (the last `patience`
    flags are all True), else downgraded to info with the point it last held.

    A condition that held and then cleared (a warm-up, a transient) is history, not a failure: ranking it with what is
    wrong now would bury the live findings under every run's first few hundred steps. Live alarms still start when the
    condition first holds, because then it holds at the end of the history seen so far.
    """
    if len(flags) >= patience and all(flags[-patience:]):
        return finding
    last = last_sustained(flags, patience)
    return as_info(
        finding, "cleared", last_held=position(points[last]) if last is not None else None, patience=patience
    )


def as_info(finding: Finding, reason: str, **note: Any) -> Finding:
    """`finding` downgraded to info, with why in its values: `reason` (a key of `codecgan.diagnosis.wording`'s
    INFO_NOTES, which words it) and the note's numbers."""
    values = {**finding.values, REPORTED_AS_INFO: {"reason": reason, **note}}
    return dataclasses.replace(finding, severity="info", values=values)
