"""Compaction of a callback's step series between validation rounds: a long run's history grows with its rounds, not
its logging steps, and the rules that read the series at round granularity give the answer they give on every point.

A rule that reads a step series only through its rounds (`MetricHistory.aligned`: the median of the interval since
the previous round; `lr_vanished`: the latest value at or before each round and the peak so far) reads the same
numbers when each closed interval's points are replaced by a summary that keeps them: the interval's median at the
round's step, or its largest and its last point. The newest RECENT_POINTS points of a series stay as logged.
"""

from __future__ import annotations

import math
from typing import Callable

from codecgan.diagnosis.history import MetricHistory, Point
from codecgan.diagnosis.trends import median

# Points of each compacted series kept as logged: a series' newest stretch reads as the logs do, and a history shorter
# than this is never compacted (the tiny configs' runs, the live = offline tests).
RECENT_POINTS = 512

Summary = Callable[[list[Point], Point], list[Point]]


def compact_between_rounds(history: MetricHistory, tag: str, rounds: list[Point], summary: Summary) -> None:
    """Replace the points of `tag` in each closed round interval (previous round's step, round's step] older than its
    newest RECENT_POINTS by `summary(points, round)`, for the rounds (points with steps, in step order) wholly in
    that older part. Points without a step are left alone."""
    tag = history.resolve(tag) or tag
    points = history.series(tag)
    if len(points) <= RECENT_POINTS or not rounds or any(p.step is None for p in points + rounds):
        return
    oldest_recent = points[-RECENT_POINTS].step
    ends = [r.step for r in rounds if r.step < oldest_recent]  # intervals closed before the recent points
    if not ends:
        return
    compacted, group, end_index = [], [], 0
    cut = next(i for i, p in enumerate(points) if p.step > ends[-1])
    for point in points[:cut]:
        while point.step > ends[end_index]:
            compacted += summary(group, rounds[end_index]) if group else []
            group, end_index = [], end_index + 1
        group.append(point)
    compacted += summary(group, rounds[end_index]) if group else []
    history.replace(tag, compacted + points[cut:])


def median_at_round(points: list[Point], round_: Point) -> list[Point]:
    """The interval's median (`aligned`'s value for the round) at the round's step, after its non-finite points (which
    `aligned` skips and NONFINITE_LOSS reports)."""
    kept = [p for p in points if not math.isfinite(p.value)]
    if len(kept) < len(points):
        kept.append(Point(round_.step, round_.epoch, median([p.value for p in points])))
    return kept


def largest_and_last(points: list[Point], round_: Point) -> list[Point]:
    """The interval's largest value (for a peak so far) and its last point (the value at the round)."""
    largest = max(points, key=lambda p: p.value)
    return [points[-1]] if largest is points[-1] else [largest, points[-1]]


def drop_zeros_before(history: MetricHistory, tag: str) -> None:
    """Drop the zero points of a count series older than its newest RECENT_POINTS: a rule that reads only the
    non-zero counts (NONFINITE_LOSS) answers alike."""
    tag = history.resolve(tag) or tag
    points = history.series(tag)
    if len(points) > RECENT_POINTS:
        old, recent = points[:-RECENT_POINTS], points[-RECENT_POINTS:]
        history.replace(tag, [p for p in old if p.value != 0] + recent)
