"""The verdict of one experiment: the decision metric of each arm, the effect of the change and its noise band."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

from codecgan.confirm.arms import transform
from codecgan.diagnosis.history import HistoryError, MetricHistory

VERDICTS = ("confirmed", "refuted", "inconclusive")
# The noise band is never narrower than this share of the values compared: float rounding is not an effect.
RELATIVE_NOISE_FLOOR = 1e-6


@dataclass
class Verdict:
    """One row of `codecgan confirm`: `verdict` is `confirmed`, `refuted`, `inconclusive`, or `no experiment`,
    `no finding`; `control`/`treatment` are the seed means of the metric, `effect` the mean paired difference
    (treatment − control, signed so that positive means better), `noise` the seed-to-seed band."""

    code: str
    experiment: str
    verdict: str
    metric: str | None = None
    direction: str | None = None
    control: float | None = None
    treatment: float | None = None
    effect: float | None = None
    noise: float | None = None
    steps: int | None = None
    start: str | None = None
    runs: list[str] | None = None
    note: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def metric_value(folder: Path, tag: str, transform_name: str | None) -> float:
    """The arm's value of `tag`: the mean over the second half of its logged points (the first half is the arm
    settling after the change). A tag ending in `*` sums the tags with that prefix at each step. NaN when the arm
    logged no finite value."""
    try:
        history = MetricHistory.from_tensorboard_run(str(folder))
    except HistoryError:
        return math.nan
    if tag.endswith("*"):
        by_step: dict[int, float] = {}
        for name in history.tags_with_prefix(tag[:-1]):
            for point in history.series(name):
                by_step[point.step] = by_step.get(point.step, 0.0) + point.value
        values = [by_step[step] for step in sorted(by_step)]
    else:
        values = [point.value for point in history.series(tag)]
    values = [transform(value, transform_name) for value in values if math.isfinite(value)]
    values = [value for value in values if math.isfinite(value)]
    if not values:
        return math.nan
    second_half = values[len(values) // 2 :]
    return sum(second_half) / len(second_half)


def decide(controls: list[float], treatments: list[float], direction: str) -> tuple[str, float, float, str]:
    """(verdict, effect, noise, note) from per-seed values of the two arms (paired by seed).

    effect: the mean over seeds of (treatment − control), positive when the treatment is better (`direction`
    `max`: higher is better). noise: the largest spread (max − min) of one arm across seeds. `confirmed` when the
    effect exceeds the noise, `refuted` when it is at or below minus the noise (no better, measured), else
    `inconclusive`. An arm without the metric makes the verdict `inconclusive`."""
    pairs = [(c, t) for c, t in zip(controls, treatments) if math.isfinite(c) and math.isfinite(t)]
    if not pairs:
        return "inconclusive", math.nan, math.nan, "an arm logged no value of the metric"
    sign = 1.0 if direction == "max" else -1.0
    effect = sum(sign * (t - c) for c, t in pairs) / len(pairs)
    spreads = [max(arm) - min(arm) for arm in zip(*pairs)] if len(pairs) > 1 else [0.0]
    scale = max(abs(value) for pair in pairs for value in pair)
    noise = max(max(spreads), RELATIVE_NOISE_FLOOR * scale)
    note = "" if len(pairs) > 1 else "one seed: no noise band (use --seeds 2 or more)"
    if effect > noise:
        return "confirmed", effect, noise, note
    if effect <= -noise:
        return "refuted", effect, noise, note
    return "inconclusive", effect, noise, note
