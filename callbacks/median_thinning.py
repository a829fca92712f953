"""Thinning of a step series that rules read as medians per epoch and per validation interval: a long run's history
grows with its epochs and rounds, not its logging steps, and every median the rules take is the same number.

`MetricHistory.per_epoch` takes the median of each epoch's points (at the epoch's last point) and `aligned` the median of
the points in each interval between rounds (a round with no point of its own takes the latest earlier point). A median
stays the same when one point under it and one point over it are dropped (never one of its middle points). For an
epoch that also holds several validation intervals, each dropped pair must straddle its own interval's median, and the
epoch's dropped points must fall as often under the epoch's median as over it: pairs of one point under and one over
both medians always; pairs under both, and pairs over both, in equal numbers. What stays is each median's middle
points, the last point of the epoch and of each interval followed by one without points, non-finite points (which
medians skip), the points a caller pins, and the pairs left unbalanced.

An epoch is thinned once it is closed (a later epoch has points), older than the newest points kept as logged, and
wholly before the last of `split_rounds` (an interval still open may gain points that move its median), and only if its
points are exactly those in one interval of each of `exact_rounds` (epochs the rules align other series on by step);
otherwise it stays as logged. An interval that spans two epochs keeps its median: each epoch drops only pairs that
straddle the whole interval's median.
"""

from __future__ import annotations

import bisect
import math
from typing import Callable

from callbacks.history_compaction import RECENT_POINTS
from codecgan.diagnosis.history import MetricHistory, Point

Pins = Callable[[list[Point]], list[bool]]


def thin_keeping_medians(
    history: MetricHistory,
    tag: str,
    exact_rounds: list[list[Point]] = (),
    split_rounds: list[Point] | None = None,
    pins: Pins | None = None,
    recent: int = RECENT_POINTS,
) -> None:
    """Drop points of `tag` so that its epoch medians (`per_epoch`), its medians over each of `exact_rounds`' intervals
    (rounds that close one epoch each) and over `split_rounds`' intervals (several in an epoch) stay the same; `pins`
    marks points that must stay for another reading of the series; the newest `recent` points stay as logged."""
    tag = history.resolve(tag) or tag
    points = history.series(tag)
    old = len(points) - recent
    steps = [p.step for p in points]
    if old <= 0 or any(p.step is None or p.epoch is None for p in points) or steps != sorted(steps):
        return
    ends = None if split_rounds is None else sorted(r.step for r in split_rounds)
    interval = [0] * len(points) if ends is None else [bisect.bisect_left(ends, step) for step in steps]
    members: dict[int, list[int]] = {}
    for i, k in enumerate(interval):
        members.setdefault(k, []).append(i)
    groups = epoch_groups(points)
    pinned = pins(points) if pins else [False] * len(points)
    for k, indices in members.items():  # a round with no point of its own reads the latest earlier point
        if ends is not None and k + 1 not in members:
            pinned[indices[-1]] = True
    dropped: set[int] = set()
    for before, group, after in zip([None] + groups, groups, groups[1:] + [None]):
        if after is None or group[-1] >= old or (ends is not None and interval[group[-1]] == len(ends)):
            continue  # an epoch still open, among the newest points, or after the last round (an open interval)
        first, last = steps[group[0]], steps[group[-1]]
        previous = steps[before[-1]] if before else None
        if not all(one_interval(rounds, previous, first, last, steps[after[0]]) for rounds in exact_rounds):
            continue
        cells: dict[int, list[int]] = {}
        for i in group:
            cells.setdefault(interval[i], []).append(i)
        if ends is None:
            cells, members = {0: group}, {0: group}
        dropped |= balanced_pairs(points, group, [(cell, members[k]) for k, cell in cells.items()], pinned)
    if dropped:
        history.replace(tag, [p for i, p in enumerate(points) if i not in dropped])


def epoch_groups(points: list[Point]) -> list[list[int]]:
    """Indices of each run of consecutive points of one epoch, as `per_epoch` groups them."""
    groups: list[list[int]] = []
    for i, point in enumerate(points):
        if groups and points[groups[-1][-1]].epoch == point.epoch:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def one_interval(rounds: list[Point], previous: int | None, first: int, last: int, following: int) -> bool:
    """Whether the points from step `first` to `last` are all, and the only, points in one interval of `rounds`
    (previous round's step, round's step], with the series' neighbouring points at `previous` and `following`."""
    ends = [r.step for r in rounds]
    if any(e is None for e in ends) or ends != sorted(ends):
        return False
    j = bisect.bisect_left(ends, last)
    if j == len(ends) or following <= ends[j]:
        return False
    start = ends[j - 1] if j > 0 else -math.inf
    return first > start and (previous is None or previous <= start)


def middle(ranked: list[int]) -> list[int]:
    """The middle one (odd length) or two (even) of `ranked`."""
    n = len(ranked)
    return ranked[(n - 1) // 2 : n // 2 + 1] if n else []


def balanced_pairs(
    points: list[Point], group: list[int], cells: list[tuple[list[int], list[int]]], pinned: list[bool]
) -> set[int]:
    """The indices of an epoch's `group` that can go without moving its median or its intervals' medians (module
    docstring). `cells`: (the group's points in an interval, all the interval's points)."""

    def ranked(indices: list[int]) -> list[int]:  # the finite points, by value, ties in logging order
        return sorted((i for i in indices if math.isfinite(points[i].value)), key=lambda i: (points[i].value, i))

    order = ranked(group)
    mids = middle(order)
    if not mids:
        return set()
    rank = {i: r for r, i in enumerate(order)}
    low_mid, high_mid = rank[mids[0]], rank[mids[-1]]
    keep = set(mids) | {group[-1]} | {i for i in group if pinned[i]}
    neutral: list[int] = []
    both_under: list[tuple[int, int]] = []
    both_over: list[tuple[int, int]] = []
    for cell, interval in cells:
        interval_order = ranked(interval)
        own = middle(interval_order)
        position = {i: r for r, i in enumerate(interval_order)}
        kept_here = keep | set(own)
        below = [i for i in ranked(cell) if i not in kept_here and position[i] < position[own[0]]]
        above = [i for i in ranked(cell) if i not in kept_here and position[i] > position[own[-1]]]
        below_under = [i for i in below if rank[i] < low_mid]
        below_over = [i for i in below if rank[i] > high_mid]
        above_under = [i for i in above if rank[i] < low_mid]
        above_over = [i for i in above if rank[i] > high_mid]
        n = min(len(below_under), len(above_over))
        neutral += below_under[:n] + above_over[:n]
        both_under += list(zip(below_under[n:], above_under))
        both_over += list(zip(below_over, above_over[n:]))
    balanced = min(len(both_under), len(both_over))
    return set(neutral) | {i for pair in both_under[:balanced] + both_over[:balanced] for i in pair}
