"""Compaction of a callback's step series between validation rounds: a long run's history grows with its rounds, not
its logging steps, and the rules that read the series at round granularity give the answer they give on every point.

A rule that reads a step series only through its rounds (`MetricHistory.aligned`: the median of the interval since
the previous round; `lr_vanished`: the latest value at or before each round and the peak so far) reads the same
numbers when each closed interval's points are replaced by a summary that keeps them: the interval's median at the
round's step, or its largest and its last point. A rule that reads a series through conditions on consecutive
points (a condition held for `patience` points in a row, its first and its last point, a trailing window) reads the
same when the middle of each run of points that share a label is dropped (`thin_runs`). The newest RECENT_POINTS
points of a series stay as logged.
"""

from __future__ import annotations

import math
from typing import Callable, Hashable, Mapping

from codecgan.diagnosis.history import MetricHistory, Point
from codecgan.diagnosis.trends import median

# Points of each compacted series kept as logged: a series' newest stretch reads as the logs do, and a history shorter
# than this is never compacted (the tiny configs' runs, the live = offline tests).
RECENT_POINTS = 512

Summary = Callable[[list[Point], Point], list[Point]]


def compact_between_rounds(
    history: MetricHistory, tag: str, rounds: list[Point], summary: Summary, recent: int = RECENT_POINTS
) -> None:
    """Replace the points of `tag` in each closed round interval (previous round's step, round's step] older than its
    newest `recent` points by `summary(points, round)`, for the rounds (points with steps, in step order) wholly in
    that older part. Points without a step are left alone."""
    tag = history.resolve(tag) or tag
    points = history.series(tag)
    if len(points) <= recent or not rounds or any(p.step is None for p in points + rounds):
        return
    oldest_recent = points[-recent].step
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


Labels = Callable[[list[Point]], list[Hashable | None]]


def thin_runs(history: MetricHistory, tag: str, labels: Labels, ends: Mapping[Hashable, tuple[int, int]]) -> None:
    """Drop the middle of each run of consecutive points of `tag` that share a label, in the part older than its newest
    RECENT_POINTS: a run labelled L keeps its first and last points, `ends[L]` = (head, tail) of them; a point labelled
    None stays. `labels(points)` labels each point of the series (from its value, and its index for a rule that skips
    the first few points, which then label them None), so a thinned series labels its points as before. Runs are
    taken over the whole series: one that goes on into the newest points keeps its head."""
    tag = history.resolve(tag) or tag
    points = history.series(tag)
    kept = run_ends_kept(points, labels, ends)
    if not all(kept):
        history.replace(tag, [p for p, keep in zip(points, kept) if keep])


def run_ends_kept(points: list[Point], labels: Labels, ends: Mapping[Hashable, tuple[int, int]]) -> list[bool]:
    """For each point, whether `thin_runs` keeps it."""
    old = len(points) - RECENT_POINTS
    if old <= 0:
        return [True] * len(points)
    marks, kept, start = labels(points), [], 0
    while start < len(points):
        stop = start + 1
        while stop < len(points) and marks[stop] == marks[start]:
            stop += 1
        head, tail = (stop, stop) if marks[start] is None else ends[marks[start]]
        kept += [i >= old or i - start < head or stop - 1 - i < tail for i in range(start, stop)]
        start = stop
    return kept


def flag_runs(flag: Callable[[float], bool], skip_first: int = 0, finite_only: bool = False) -> Labels:
    """Labels for a rule that flags each point by its value (`flag`) and looks for `patience` flagged points in a row:
    "flagged" or "clear"; the first `skip_first` points (a warm-up the rule judges by index) None; non-finite values,
    which a `finite_only` rule skips, "skipped"."""

    def labels(points: list[Point]) -> list[Hashable | None]:
        return [
            None
            if i < skip_first
            else "skipped"
            if finite_only and not math.isfinite(p.value)
            else "flagged"
            if flag(p.value)
            else "clear"
            for i, p in enumerate(points)
        ]

    return labels


def flag_run_ends(patience: int) -> dict[Hashable, tuple[int, int]]:
    """What a `patience` rule reads of `flag_runs` runs: a flagged run's first `patience` points (where it is first
    sustained, and the window it reports) and its last (where it last held); one point of a clear run (it still breaks
    the flagged runs around it); no skipped point."""
    return {"flagged": (patience, 1), "clear": (0, 1), "skipped": (0, 0)}


def keep_recent(history: MetricHistory, tag: str) -> None:
    """Keep only the newest RECENT_POINTS points of `tag`: for a series a rule reads only at its last point."""
    tag = history.resolve(tag) or tag
    points = history.series(tag)
    if len(points) > RECENT_POINTS:
        history.replace(tag, points[-RECENT_POINTS:])
