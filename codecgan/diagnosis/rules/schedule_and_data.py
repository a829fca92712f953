"""Rules on the schedule and the data: a learning rate decayed to nothing, evaluation files that are training files,
and transient loss spikes."""

from __future__ import annotations

import bisect
import itertools
import math
from dataclasses import dataclass
from typing import Sequence

from codecgan.diagnosis import tags
from codecgan.diagnosis.findings import Finding, position
from codecgan.diagnosis.history import MetricHistory, Point
from codecgan.diagnosis.quality_metric import base_tag, quality_metric
from codecgan.diagnosis.trends import median, settle

# A learning rate under 1e-3 of its peak moves the weights a thousandth as far per step as at the peak: a run needs
# a thousand times more steps to make the same progress. StepLR halving every 30 epochs gets there after 300 epochs;
# DAC's ExponentialLR(0.999996) after 1.7 M steps; ExponentialLR(0.999) after 6,900 steps (coqui-ai/TTS#1003: 7e-111
# at step 244k). Below 1e-8 an Adam update is under 1e-8 per weight whatever the peak was.
LR_VANISHED_FRACTION = 1e-3
LR_FLOOR = 1e-8
LR_TAGS = (tags.TRAIN_LR_G, tags.TRAIN_LR_D)
# Validation rounds without improvement, after the round where the learning rate had vanished, before it is a
# finding: a cosine schedule reaching 0 on the last round of a run that was still improving is not one.
LR_STALL_ROUNDS = 3
# Smallest change that counts as an improvement: under half the round-to-round jitter of validation PESQ on fixed
# crops (0.1 MOS is the divergence rule's fall), 0.1 dB of SNR or SI-SDR; 0.5% of the best for other metrics (the mel
# distance).
STALL_MIN_IMPROVEMENT = {tags.VAL_PESQ: 0.02, tags.VAL_SNR: 0.1, tags.VAL_SI_SDR: 0.1}
STALL_RELATIVE_IMPROVEMENT = 0.005

# A loss spike: a logging point above the median of the trailing SPIKE_WINDOW points by more than SPIKE_K times their
# median absolute deviation (about 6.7 standard deviations of Gaussian noise), back under that threshold within
# SPIKE_RECOVERY logging points. A loss that stays up is a level shift (the divergence rules), not a spike.
SPIKE_K = 10.0
SPIKE_WINDOW = 50
SPIKE_MIN_BASELINE = 10
SPIKE_RECOVERY = 3
# The spread never counts as less than 5% of the median, so a nearly constant loss needs a jump of half its value.
SPIKE_SPREAD_FLOOR = 0.05
# Spikes at this many distinct logging points make a warning: one is an outlier batch, repeated ones are a pattern.
SPIKE_REPEATS = 3
SPIKES_LISTED = 5


def _key(point: Point, by_step: bool) -> float:
    value = point.step if by_step else point.epoch
    return -math.inf if value is None else value


def _min_improvement(metric: str, best: float) -> float:
    base = base_tag(metric)
    return STALL_MIN_IMPROVEMENT.get(base, STALL_RELATIVE_IMPROVEMENT * abs(best))


def lr_vanished(history: MetricHistory, stall_rounds: int = LR_STALL_ROUNDS) -> Finding | None:
    """LR_VANISHED: a learning rate below 1e-3 of its peak (or below 1e-8) while validation quality stalls.

    Holds at a validation round when the generator's or the discriminator's learning rate (`train/lr_g`,
    `train/lr_d`, the latest value logged at or before each round) was vanished at that round and the `stall_rounds`
    rounds before it, and none of the last `stall_rounds` rounds improved on the best up to the first of them. The
    quality metric is the family's (`codecgan.diagnosis.quality_metric`: val/pesq, else val/loss_mel, lower is better,
    else val/si_sdr, else val/snr_db).
    """
    chosen = quality_metric(history)
    lr_tags = [tag for tag in LR_TAGS if history.has(tag)]
    if chosen is None or not lr_tags:
        return None
    metric, mode = chosen
    sign = 1.0 if mode == "max" else -1.0
    rounds = [p for p in history.series(metric) if math.isfinite(p.value)]
    lr_series = {tag: [p for p in history.series(tag) if math.isfinite(p.value)] for tag in lr_tags}
    by_step = all(p.step is not None for p in rounds) and all(
        p.step is not None for points in lr_series.values() for p in points
    )
    # For each round and LR tag: (the learning rate then, its peak so far); absent before the first logged value.
    states: list[dict[str, tuple[float, float]]] = [{} for _ in rounds]
    for tag, points in lr_series.items():
        points = sorted(points, key=lambda p: _key(p, by_step))
        keys = [_key(p, by_step) for p in points]
        peaks = list(itertools.accumulate((p.value for p in points), max))
        for state, round_point in zip(states, rounds):
            count = bisect.bisect_right(keys, _key(round_point, by_step))
            if count:
                state[tag] = (points[count - 1].value, peaks[count - 1])

    def vanished(index: int) -> list[str]:
        return [tag for tag, (lr, peak) in states[index].items() if lr < LR_FLOOR or lr < LR_VANISHED_FRACTION * peak]

    def holds(index: int) -> bool:
        start = index - stall_rounds
        if start < 0 or not all(vanished(j) for j in range(start, index + 1)):
            return False
        best = max(sign * p.value for p in rounds[: start + 1])
        since = max(sign * p.value for p in rounds[start + 1 : index + 1])
        return since - best < _min_improvement(metric, sign * best)

    flags = [holds(i) for i in range(len(rounds))]
    if not any(flags):
        return None
    first = flags.index(True)
    start = first - stall_rounds
    best_index = max(range(start + 1), key=lambda j: (sign * rounds[j].value, -j))
    tag = vanished(start)[0]
    lr_start, peak = states[start][tag]
    lr_last, _ = states[-1].get(tag, (lr_start, peak))
    point = rounds[first]
    values = {
        "tag": tag,
        "lr": lr_start,
        "lr_at": position(rounds[start]),
        "peak": peak,
        "vanished_fraction": LR_VANISHED_FRACTION,
        "floor": LR_FLOOR,
        "metric": metric,
        "mode": mode,
        "best": rounds[best_index].value,
        "best_at": position(rounds[best_index]),
        "stall_rounds": stall_rounds,
        "stalled": [p.value for p in rounds[start + 1 : first + 1]],
        "first": position(point),
        "latest_lr": lr_last,
        "also_vanished": [t for t in vanished(start) if t != tag],
    }
    finding = Finding("LR_VANISHED", "warning", point.step, point.epoch, values)
    return settle(finding, rounds, flags, 1)


def data_leak(history: MetricHistory, examples: Sequence[str] = ()) -> Finding | None:
    """DATA_LEAK: validation or test files that are training files, or validation files that are test files, as
    counted at the start of fit (`diag/data_leak_files`, `diag/val_test_shared_files`; DataLeakCheck).

    `examples` (file names, from the live check) are named in the evidence; offline the run's text entry
    `diag/data_leak` lists them. A count that was non-zero at an earlier start and is 0 at the latest is info.
    """
    counted = {tag: history.series(tag) for tag in (tags.DATA_LEAK_FILES, tags.VAL_TEST_SHARED_FILES)}
    counted = {tag: points for tag, points in counted.items() if points}
    if not any(p.value > 0 for points in counted.values() for p in points):
        return None
    leaked = counted.get(tags.DATA_LEAK_FILES, [])
    shared = counted.get(tags.VAL_TEST_SHARED_FILES, [])
    latest_leaked = leaked[-1].value if leaked else 0.0
    latest_shared = shared[-1].value if shared else 0.0
    first = min(
        (p for points in counted.values() for p in points if p.value > 0),
        key=lambda p: (_key(p, True), _key(p, False)),
    )
    latest = max((points[-1] for points in counted.values()), key=lambda p: (_key(p, True), _key(p, False)))
    values = {
        "leaked_files": latest_leaked,
        "val_test_shared_files": latest_shared,
        "latest": position(latest),
        "first_count": first.value,
        "first": position(first),
        "examples": list(examples),
    }
    if latest_leaked > 0 or latest_shared > 0:
        return Finding("DATA_LEAK", "warning", latest.step, latest.epoch, values)
    return Finding("DATA_LEAK", "info", first.step, first.epoch, values)


@dataclass(frozen=True)
class Spike:
    """One loss spike: the logging point where `tag` jumped above `threshold` (median + k·MAD of the trailing
    window, whose median is `baseline`), the highest value before it came back, and where it came back."""

    tag: str
    point: Point
    baseline: float
    threshold: float
    peak: float
    back: Point


def _threshold(values: Sequence[float], index: int, k: float, window: int) -> tuple[float, float]:
    trailing = values[max(0, index - window) : index]
    center = median(trailing)
    spread = max(median([abs(v - center) for v in trailing]), SPIKE_SPREAD_FLOOR * abs(center), 1e-12)
    return center, center + k * spread


def find_spikes(
    tag: str,
    points: Sequence[Point],
    start: int = 0,
    k: float = SPIKE_K,
    window: int = SPIKE_WINDOW,
    recovery: int = SPIKE_RECOVERY,
) -> list[Spike]:
    """The spikes of one loss series (finite points in logging order) that begin at index `start` or later.

    Index i begins a spike when its value exceeds median + k·MAD of the `window` points before it (at least
    SPIKE_MIN_BASELINE of them), the point before it did not exceed its own threshold, and one of the next `recovery`
    points is back under i's threshold. Each index is judged on its own neighbourhood, so a live callback that judges
    only its newest points finds the same spikes as a pass over the whole history.
    """
    values = [p.value for p in points]
    spikes = []
    for index in range(max(start, SPIKE_MIN_BASELINE), len(values)):
        baseline, threshold = _threshold(values, index, k, window)
        if values[index] <= threshold:
            continue
        if index - 1 >= SPIKE_MIN_BASELINE and values[index - 1] > _threshold(values, index - 1, k, window)[1]:
            continue  # inside a spike or a level shift that began earlier
        after = range(index + 1, min(len(values), index + 1 + recovery))
        back = next((j for j in after if values[j] <= threshold), None)
        if back is not None:
            peak = max(values[index:back])
            spikes.append(Spike(tag, points[index], baseline, threshold, peak, points[back]))
    return spikes


def loss_series(history: MetricHistory) -> dict[str, list[Point]]:
    """The finite points of every logged loss term (train/loss_g, train/loss_d, train/loss_*)."""
    return {
        tag: [p for p in history.series(tag) if math.isfinite(p.value)]
        for tag in history.tags_with_prefix(tags.TRAIN_LOSS_PREFIX)
    }


TOTAL_LOSS_TAGS = ("train/loss_g", "train/loss_d", "train/loss")


def spike_finding(spikes: Sequence[Spike], repeats: int = SPIKE_REPEATS) -> Finding | None:
    """LOSS_SPIKE from a set of spikes: a warning when the generator's or discriminator's total loss spiked at `repeats`
    distinct logging points (first where the `repeats`-th began), info otherwise (fewer, or single terms only)."""
    if not spikes:
        return None
    ordered = sorted(spikes, key=lambda s: (_key(s.point, True), _key(s.point, False), s.tag))
    events: list[Point] = []
    for spike in ordered:
        if not events or (spike.point.step, spike.point.epoch) != (events[-1].step, events[-1].epoch):
            events.append(spike.point)
    # Only the totals make a pattern: a single term spikes when its codebooks or features shift (a healthy tiny codec's
    # train/loss_vq jumps 6x at 6 logging points in 500 steps) while the generator's and discriminator's losses hold.
    total_events: list[Point] = []
    for spike in ordered:
        if spike.tag in TOTAL_LOSS_TAGS and (not total_events or spike.point != total_events[-1]):
            total_events.append(spike.point)
    severity = "warning" if len(total_events) >= repeats else "info"
    first = total_events[repeats - 1] if severity == "warning" else events[0]
    values = {
        "spike_points": len(events),
        "total_loss_spike_points": len(total_events),
        "repeats": repeats,
        "total_loss_tags": list(TOTAL_LOSS_TAGS[:2]),
        "k": SPIKE_K,
        "window": SPIKE_WINDOW,
        "recovery": SPIKE_RECOVERY,
        "spike_count": len(ordered),
        # The first SPIKES_LISTED, in order: a long run can spike at hundreds of points.
        "spikes": [
            {
                "tag": s.tag,
                "peak": s.peak,
                "at": position(s.point),
                "baseline": s.baseline,
                "threshold": s.threshold,
                "back": position(s.back),
            }
            for s in ordered[:SPIKES_LISTED]
        ],
    }
    return Finding("LOSS_SPIKE", severity, first.step, first.epoch, values)


def loss_spike(history: MetricHistory, repeats: int = SPIKE_REPEATS) -> Finding | None:
    """LOSS_SPIKE: a loss term that jumps above median + 10·MAD of its trailing window and comes back within a few
    logging points; info unless spikes occur at `repeats` (3) or more logging points."""
    spikes = [s for tag, points in loss_series(history).items() for s in find_spikes(tag, points)]
    return spike_finding(spikes, repeats)
