"""Rules on the adversarial side: vanished feature matching, a negligible GAN term, PESQ-None batches and a metric
discriminator that does not learn (the discriminator's balance with the generator: discriminator_balance.py)."""

from __future__ import annotations

import math
from typing import Any, Mapping

from codecgan.diagnosis import tags
from codecgan.diagnosis.findings import Finding, position
from codecgan.diagnosis.history import MetricHistory
from codecgan.diagnosis.trends import as_info, first_sustained, median, settle

# Feature matching below 10% of its early peak: the discriminator's features no longer separate real from generated.
FM_PEAK_FRACTION = 0.1
FM_EARLY_EPOCHS = 3
# Under 1% of the generator loss, the feature-matching gradient is negligible next to the reconstruction terms.
FM_SHARE_FLOOR = 0.01
# Without train/loss_g: a weighted feature distance under 0.05 is under 1% of a typical reconstruction loss (5-15).
FM_ABSOLUTE_FLOOR = 0.05
FM_PATIENCE = 3  # epochs

# A term contributing under 1% of the gradient norm at the generator output cannot steer the generator.
GAN_SHARE_FLOOR = 0.01
GAN_TERM_KEYWORDS = ("adv", "gan", "metric")
GAN_SHARE_WINDOW = 5  # measurements in the trailing median
GAN_SHARE_MIN_POINTS = 3
# Families whose generator output is a waveform trained by a log-mel L1, whose gradient at the waveform grows as
# 1 / mel in quiet bins: there the mel term dominates the output's gradient norm, and a GAN term's share of it says
# little about its pull on the generator's weights. On the healthy tiny Vocos vocoder (steps 100 and 300, 4 batches
# each) the adversarial share at the waveform was 7e-7 to 2e-3 (smallest on the batches with the largest mel loss),
# its share of the gradient at the generator's parameters 0.4-1.6% and feature matching's 2-5% (docs/diagnostics.md,
# "The vocoder family"). A raw share under the floor is info there; a GAN term weighted 0 (share 0 at any probe)
# stays a warning.
WAVEFORM_SHARE_FAMILIES = ("vocoder",)

# A few PESQ-None batches are normal (silent crops); above 10% the metric discriminator loses a tenth of its updates.
PESQ_NONE_INFO_RATE = 0.02
PESQ_NONE_WARN_RATE = 0.10
PESQ_NONE_CRITICAL_RATE = 0.5
PESQ_NONE_PATIENCE = 2  # logging intervals

# A metric discriminator that ranks clips by quality passes 0.3 correlation with PESQ within a few hundred steps.
METRIC_D_MIN_CORR = 0.3
# In normalised PESQ units ((PESQ - 1) / 3.5): 0.15 is about 0.5 MOS.
METRIC_D_MAX_MAE = 0.15
METRIC_D_WARMUP_POINTS = 3
METRIC_D_PATIENCE = 3


def feature_matching_vanished(history: MetricHistory, patience: int = FM_PATIENCE) -> Finding | None:
    """FEATURE_MATCHING_VANISHED: the epoch-median feature-matching loss negligible for `patience` epochs.

    Negligible means below 10% of its early peak, or under 1% of train/loss_g (when logged), or, without
    train/loss_g, under an absolute floor of 0.05.
    """
    rounds = [p for p in history.per_epoch(tags.TRAIN_LOSS_FM) if math.isfinite(p.value)]
    if not rounds:
        return None
    totals = history.aligned(tags.TRAIN_LOSS_G, rounds)
    early_peak = max(p.value for p in rounds[:FM_EARLY_EPOCHS])
    has_total = any(t is not None and math.isfinite(t) and t > 0 for t in totals)

    def vanished(value: float, total: float | None) -> bool:
        if value < FM_PEAK_FRACTION * early_peak:
            return True
        if has_total:
            return total is not None and total > 0 and value / total < FM_SHARE_FLOOR
        return value < FM_ABSOLUTE_FLOOR

    flags = [vanished(p.value, t) for p, t in zip(rounds, totals)]
    index = first_sustained(flags, patience)
    if index is None:
        return None
    start, last, flagged = rounds[0], rounds[-1], rounds[index]
    if flagged.value < FM_PEAK_FRACTION * early_peak:
        limit = "early_peak"
    elif has_total and totals[index]:
        limit = "share_of_total"
    else:
        limit = "absolute"
    values = {
        "limit": limit,
        "value": flagged.value,
        "early_peak": early_peak,
        "peak_fraction": FM_PEAK_FRACTION,
        "share": flagged.value / totals[index] if limit == "share_of_total" else None,
        "share_floor": FM_SHARE_FLOOR,
        "absolute_floor": FM_ABSOLUTE_FLOOR,
        "patience": patience,
        "first": position(flagged),
        "start_value": start.value,
        "start": position(start),
        "last_value": last.value,
        "last": position(last),
    }
    finding = Finding("FEATURE_MATCHING_VANISHED", "warning", flagged.step, flagged.epoch, values)
    return settle(finding, rounds, flags, patience)


def gan_term_negligible(
    history: MetricHistory,
    gan_terms: tuple[str, ...] | None = None,
    family: str | None = None,
    term_weights: Mapping[str, Mapping[str, Any]] | None = None,
) -> Finding | None:
    """GAN_TERM_NEGLIGIBLE: a GAN term's trailing-median gradient share at the generator output under 1%.

    Under EnCodec's loss balancer (``diag/balancer_share/`` logged) a term's pull is its share of the balanced
    gradient, which its weight sets: a GAN term under 1% there is the warning (a weight of 0, say); a raw share under
    1% that the balancer rescales is reported as info, not alarmed. In a family of WAVEFORM_SHARE_FAMILIES
    (`family`, as GradientBalance records it) a raw share under 1% is info unless a flagged term's weight in
    `term_weights` ({term: {"weight": ...}}, GradientBalance's record) is 0."""
    balanced = negligible_share(history, tags.BALANCER_SHARE_PREFIX, gan_terms)
    if balanced is not None:
        return balanced
    finding = negligible_share(history, tags.GRAD_SHARE_PREFIX, gan_terms)
    if finding is not None and finding.severity != "info" and family in WAVEFORM_SHARE_FAMILIES:
        weights = {
            term["term"]: (term_weights or {}).get(term["term"], {}).get("weight") for term in finding.values["terms"]
        }
        if not any(weight == 0 for weight in weights.values()):
            return as_info(finding, "waveform_share", family=family, weights=weights)
    if finding is None or not history.tags_with_prefix(tags.BALANCER_SHARE_PREFIX):
        return finding
    shares = {}
    for term in finding.values["terms"]:
        points = history.series(tags.BALANCER_SHARE_PREFIX + term["term"])[-GAN_SHARE_WINDOW:]
        shares[term["term"]] = median([p.value for p in points]) if points else None
    return as_info(finding, "balanced", balanced_shares=shares)


def negligible_share(history: MetricHistory, prefix: str, gan_terms: tuple[str, ...] | None) -> Finding | None:
    """GAN_TERM_NEGLIGIBLE on the shares logged under ``prefix`` (``diag/grad_share/``: of the terms' own gradients;
    ``diag/balancer_share/``: of the loss balancer's gradient)."""
    share_tags = history.tags_with_prefix(prefix)
    found = []
    for tag in share_tags:
        term = tag[len(prefix) :]
        is_gan = term in gan_terms if gan_terms is not None else any(k in term for k in GAN_TERM_KEYWORDS)
        points = history.series(tag)
        if not is_gan or len(points) < GAN_SHARE_MIN_POINTS:
            continue
        trailing = [
            median([p.value for p in points[max(0, i - GAN_SHARE_WINDOW + 1) : i + 1]]) for i in range(len(points))
        ]
        flags = [i + 1 >= GAN_SHARE_MIN_POINTS and m < GAN_SHARE_FLOOR for i, m in enumerate(trailing)]
        if any(flags):
            first_flag = flags.index(True)
            found.append((term, points[first_flag], trailing[first_flag], trailing[-1], points, flags))
    if not found:
        return None
    found.sort(key=lambda item: (item[1].step or 0, item[1].epoch or 0))
    largest = max(share_tags, key=lambda t: median([p.value for p in history.series(t)[-GAN_SHARE_WINDOW:]]))
    largest_share = median([p.value for p in history.series(largest)[-GAN_SHARE_WINDOW:]])
    first = found[0][1]
    values = {
        "measure": "balanced" if prefix == tags.BALANCER_SHARE_PREFIX else "raw",
        "window": GAN_SHARE_WINDOW,
        "threshold": GAN_SHARE_FLOOR,
        "terms": [
            {"term": term, "share": flagged, "at": position(point), "share_now": now}
            for term, point, flagged, now, _, _ in found
        ],
        "first": position(first),
        "largest_term": largest[len(prefix) :],
        "largest_share": largest_share,
    }
    finding = Finding("GAN_TERM_NEGLIGIBLE", "warning", first.step, first.epoch, values)
    if any(flags[-1] for *_, flags in found):  # some GAN term is still negligible
        return finding
    return settle(finding, found[0][4], found[0][5], 1)


def pesq_none_high(history: MetricHistory, patience: int = PESQ_NONE_PATIENCE) -> Finding | None:
    """PESQ_NONE_HIGH: the fraction of batches whose metric-discriminator term was dropped, above 10% for
    `patience` logging intervals (between 2% and 10% it is an info finding)."""
    points = [p for p in history.series(tags.PESQ_NONE_RATE) if math.isfinite(p.value)]
    if not points:
        return None
    run_median = median([p.value for p in points])
    flags = [p.value > PESQ_NONE_WARN_RATE for p in points]
    index = first_sustained(flags, patience)
    clip_rates = [p.value for p in history.series(tags.PESQ_CLIP_FAIL_RATE) if math.isfinite(p.value)]
    clip_fail_median = median(clip_rates) if clip_rates else None
    if index is None:
        worst = max(points, key=lambda p: p.value)
        if worst.value <= PESQ_NONE_INFO_RATE:
            return None
        values = {
            "sustained": False,
            "peak_rate": worst.value,
            "peak": position(worst),
            "median": run_median,
            "clip_fail_median": clip_fail_median,
        }
        return Finding("PESQ_NONE_HIGH", "info", worst.step, worst.epoch, values)
    first = points[index]
    severity = "critical" if median([p.value for p in points[index:]]) > PESQ_NONE_CRITICAL_RATE else "warning"
    values = {
        "sustained": True,
        "rate": first.value,
        "first": position(first),
        "threshold": PESQ_NONE_WARN_RATE,
        "patience": patience,
        "median": run_median,
        "clip_fail_median": clip_fail_median,
    }
    finding = Finding("PESQ_NONE_HIGH", severity, first.step, first.epoch, values)
    return settle(finding, points, flags, patience)


def metric_d_not_learning(history: MetricHistory, patience: int = METRIC_D_PATIENCE) -> Finding | None:
    """METRIC_D_NOT_LEARNING: after a warm-up, D(clean, estimate) does not track the true normalised PESQ.

    Uses the Pearson correlation when logged (below 0.3, or undefined because the predictions are constant),
    otherwise the mean absolute error (above 0.15), for `patience` consecutive logging intervals.
    """
    corr = history.series(tags.METRIC_D_CORR)
    mae = history.series(tags.METRIC_D_MAE)
    if corr:
        points, flags = corr, [not (p.value >= METRIC_D_MIN_CORR) for p in corr]  # NaN counts as not learning
        measure, threshold = "correlation", METRIC_D_MIN_CORR
    elif mae:
        points, flags = mae, [p.value > METRIC_D_MAX_MAE for p in mae]
        measure, threshold = "mean_absolute_error", METRIC_D_MAX_MAE
    else:
        return None
    flags = [flag and i >= METRIC_D_WARMUP_POINTS for i, flag in enumerate(flags)]
    index = first_sustained(flags, patience)
    if index is None:
        return None
    first = points[index]
    values = {
        "measure": measure,
        "threshold": threshold,
        "patience": patience,
        "first": position(first),
        "last_value": points[-1].value,
        "last_mae": mae[-1].value if mae else None,
    }
    finding = Finding("METRIC_D_NOT_LEARNING", "warning", first.step, first.epoch, values)
    return settle(finding, points, flags, patience)
