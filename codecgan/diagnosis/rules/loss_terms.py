"""Rules on the generator's own loss terms: a reconstruction term switched off by a weight of 0 (LOSS_TERM_DISABLED).

The GAN terms have their own rule (GAN_TERM_NEGLIGIBLE, adversarial.py), which this one leaves to them: it reads the
same gradient shares (``diag/grad_share/<term>``, GradientBalance) over the same trailing window, so a history thinned
for that rule answers alike here.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from codecgan.diagnosis import tags
from codecgan.diagnosis.findings import Finding, position
from codecgan.diagnosis.history import MetricHistory, Point
from codecgan.diagnosis.rules.adversarial import GAN_SHARE_MIN_POINTS, GAN_SHARE_WINDOW, GAN_TERM_KEYWORDS
from codecgan.diagnosis.trends import median, settle

# A term weighted 0 has a gradient of exactly 0; 0.1% leaves room for rounding while staying far under any term that
# trains (the tiny MP-SENet's smallest, loss_complex, carries 5-9% in its first 100 steps; loss_phase 6.5-21% in 300).
# Under GAN_SHARE_FLOOR (1%), so GradientBalance's thinning, which keeps every share under that floor, keeps every point
# this rule flags.
TERM_SHARE_FLOOR = 1e-3


def is_gan_term(term: str, gan_terms: tuple[str, ...] | list[str] | None) -> bool:
    """Whether GAN_TERM_NEGLIGIBLE watches `term`: named in `gan_terms`, or by default a name holding "adv", "gan" or
    "metric"."""
    return term in gan_terms if gan_terms is not None else any(k in term for k in GAN_TERM_KEYWORDS)


def trailing_medians(points: list[Point], window: int) -> list[float]:
    """The median of the `window` values ending at each point (fewer at the start)."""
    return [median([p.value for p in points[max(0, i - window + 1) : i + 1]]) for i in range(len(points))]


def loss_term_disabled(
    history: MetricHistory,
    term_weights: Mapping[str, Mapping[str, Any]] | None = None,
    gan_terms: tuple[str, ...] | list[str] | None = None,
) -> Finding | None:
    """LOSS_TERM_DISABLED: a generator loss term that is not a GAN term is weighted 0 where its recipe's weight is not,
    and its trailing-median share of the generator-output gradient is under 0.1%.

    `term_weights`: {term: {"key": its config path, "weight": the run's weight, "published": the recipe's weight or
    None}}, as GradientBalance records them from the module at the start of a fit; a term missing there, or whose
    recipe weight is 0 too, is not this rule's. Without `term_weights` (a history with no `diag/config`), a term is
    weighted 0 when its logged value ``train/<term>`` is 0 at every point.
    """
    found = []
    for tag in history.tags_with_prefix(tags.GRAD_SHARE_PREFIX):
        term = tag[len(tags.GRAD_SHARE_PREFIX) :]
        if is_gan_term(term, gan_terms):
            continue
        weight = zero_weight(history, term, term_weights)
        points = history.series(tag)
        if weight is None or len(points) < GAN_SHARE_MIN_POINTS:
            continue
        trailing = trailing_medians(points, GAN_SHARE_WINDOW)
        flags = [i + 1 >= GAN_SHARE_MIN_POINTS and m < TERM_SHARE_FLOOR for i, m in enumerate(trailing)]
        if any(flags):
            index = flags.index(True)
            found.append((term, weight, points, flags, trailing, index))
    if not found:
        return None
    found.sort(key=lambda item: (item[2][item[5]].step or 0, item[2][item[5]].epoch or 0))
    share_tags = history.tags_with_prefix(tags.GRAD_SHARE_PREFIX)
    largest = max(share_tags, key=lambda t: median([p.value for p in history.series(t)[-GAN_SHARE_WINDOW:]]))
    term, _, points, flags, _, index = found[0]
    first = points[index]
    values = {
        "window": GAN_SHARE_WINDOW,
        "threshold": TERM_SHARE_FLOOR,
        "terms": [
            {"term": term, "share": trailing[i], "at": position(points[i]), "share_now": trailing[-1], **weight}
            for term, weight, points, _, trailing, i in found
        ],
        "first": position(first),
        "largest_term": largest[len(tags.GRAD_SHARE_PREFIX) :],
        "largest_share": median([p.value for p in history.series(largest)[-GAN_SHARE_WINDOW:]]),
    }
    finding = Finding("LOSS_TERM_DISABLED", "warning", first.step, first.epoch, values)
    if any(flags[-1] for _, _, _, flags, _, _ in found):  # some term is still switched off
        return finding
    return settle(finding, points, flags, 1)


def zero_weight(
    history: MetricHistory, term: str, term_weights: Mapping[str, Mapping[str, Any]] | None
) -> dict[str, Any] | None:
    """{"key", "weight", "published"} when `term` is weighted 0 and its recipe's weight is not (key and published None
    when read from the logged values); None otherwise."""
    if term_weights is not None:
        setting = term_weights.get(term)
        if setting is None or setting.get("weight") != 0 or setting.get("published") == 0:
            return None
        return {"key": setting.get("key"), "weight": 0.0, "published": setting.get("published")}
    logged = [p.value for p in history.series("train/" + term)]  # as the loop logs each term
    if not logged or any(not math.isfinite(v) or v != 0 for v in logged):
        return None
    return {"key": None, "weight": 0.0, "published": None}
