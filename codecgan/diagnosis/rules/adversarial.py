"""Rules on the adversarial side: vanished feature matching, a negligible GAN term, PESQ-None batches and a metric
discriminator that does not learn (the discriminator's balance with the generator: discriminator_balance.py)."""

from __future__ import annotations

import math

from codecgan.diagnosis import tags
from codecgan.diagnosis.findings import Finding
from codecgan.diagnosis.history import MetricHistory
from codecgan.diagnosis.trends import first_sustained, median, percent, settle, where

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
    first, last, flagged = rounds[0], rounds[-1], rounds[index]
    if flagged.value < FM_PEAK_FRACTION * early_peak:
        limit = f"below {percent(FM_PEAK_FRACTION)} of its early peak {early_peak:.4f}"
    elif has_total and totals[index]:
        limit = f"under {percent(FM_SHARE_FLOOR)} of {tags.TRAIN_LOSS_G} ({flagged.value / totals[index]:.2%})"
    else:
        limit = f"below {FM_ABSOLUTE_FLOOR:g} (no {tags.TRAIN_LOSS_G} was logged to compare it with)"
    evidence = (
        f"{tags.TRAIN_LOSS_FM} stayed {limit} for {patience} consecutive epochs by {where(rounds[index])}: it went "
        f"from {first.value:.4f} at {where(first)} to {last.value:.4f} at {where(last)}, so the generator gets almost "
        f"no signal from the discriminator's features."
    )
    suggestion = (
        "Feature matching carries signal only when the discriminator separates real from generated audio: fix the "
        "discriminator first (see DISCRIMINATOR_AT_CHANCE), or rerun with the feature-matching weight ×10 and check "
        f"that {tags.TRAIN_LOSS_FM} rises."
    )
    finding = Finding(
        "FEATURE_MATCHING_VANISHED", "warning", rounds[index].step, rounds[index].epoch, evidence, suggestion
    )
    return settle(finding, rounds, flags, patience)


def gan_term_negligible(history: MetricHistory, gan_terms: tuple[str, ...] | None = None) -> Finding | None:
    """GAN_TERM_NEGLIGIBLE: a GAN term's trailing-median gradient share at the generator output under 1%."""
    share_tags = history.tags_with_prefix(tags.GRAD_SHARE_PREFIX)
    found = []
    for tag in share_tags:
        term = tag[len(tags.GRAD_SHARE_PREFIX) :]
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
    listed = ", ".join(
        f"{term} {percent(flagged)} at {where(point)}" + ("" if now < GAN_SHARE_FLOOR else f", {percent(now)} now")
        for term, point, flagged, now, _, _ in found
    )
    evidence = (
        f"The GAN terms' median share of the generator-output gradient norm over the last {GAN_SHARE_WINDOW} "
        f"measurements was under {percent(GAN_SHARE_FLOOR)} ({listed}), first at {where(found[0][1])}, while "
        f"{largest[len(tags.GRAD_SHARE_PREFIX) :]} had {percent(largest_share)}: the adversarial term barely moves "
        f"the generator."
    )
    suggestion = (
        "Rerun with the GAN term's weight raised until its share reaches a few percent (for example ×10), or with the "
        "dominant reconstruction term lowered, and compare the validation metric; GradientBalance logs the shares."
    )
    first = found[0][1]
    finding = Finding("GAN_TERM_NEGLIGIBLE", "warning", first.step, first.epoch, evidence, suggestion)
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
    clip_text = f", and a median {percent(median(clip_rates))} of clips had no PESQ" if clip_rates else ""
    suggestion = (
        "Check for silent or too-short crops: rerun with crops chosen away from silence or a longer crop and compare "
        "the rate; if it falls, the metric discriminator was starved by whole-batch drops, so score and skip per clip "
        "instead of dropping the batch."
    )
    if index is None:
        worst = max(points, key=lambda p: p.value)
        if worst.value <= PESQ_NONE_INFO_RATE:
            return None
        evidence = (
            f"{tags.PESQ_NONE_RATE} peaked at {worst.value:.3f} at {where(worst)} (median {run_median:.3f}{clip_text}); "
            f"a few PESQ-None batches are normal (silent crops); in each, no clip taught the metric term (under the "
            f"drop_batch policy one failed clip skips the batch's update, under mask only a batch whose every clip "
            f"failed counts)."
        )
        return Finding("PESQ_NONE_HIGH", "info", worst.step, worst.epoch, evidence, suggestion)
    first = points[index]
    severity = "critical" if median([p.value for p in points[index:]]) > PESQ_NONE_CRITICAL_RATE else "warning"
    evidence = (
        f"{tags.PESQ_NONE_RATE} was {first.value:.2f} at {where(first)} ({percent(first.value)} of batches dropped their "
        f"metric-discriminator term), above the {percent(PESQ_NONE_WARN_RATE)} limit for {patience} consecutive "
        f"logging intervals; its median over the run was {run_median:.2f}{clip_text}."
    )
    finding = Finding("PESQ_NONE_HIGH", severity, first.step, first.epoch, evidence, suggestion)
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
        limit = f"below a correlation of {METRIC_D_MIN_CORR:g}"
    elif mae:
        points, flags = mae, [p.value > METRIC_D_MAX_MAE for p in mae]
        limit = f"above a mean absolute error of {METRIC_D_MAX_MAE:g}"
    else:
        return None
    flags = [flag and i >= METRIC_D_WARMUP_POINTS for i, flag in enumerate(flags)]
    index = first_sustained(flags, patience)
    if index is None:
        return None
    first = points[index]
    mae_text = f" and {tags.METRIC_D_MAE} was {mae[-1].value:.3f}" if mae else ""
    evidence = (
        f"The metric discriminator stayed {limit} with the true normalised PESQ for {patience} consecutive logging "
        f"intervals by {where(first)}; the last value was {points[-1].value:.3f}{mae_text}, so its adversarial term "
        f"pushes the generator in a direction unrelated to PESQ."
    )
    suggestion = (
        f"Confirm its targets lie in [0, 1] and vary across clips (see {tags.PESQ_CLIP_FAIL_RATE}), then rerun with the "
        f"metric discriminator's learning rate ×2 or its dropout off; it should pass a correlation of 0.5 within a few "
        f"hundred steps."
    )
    finding = Finding("METRIC_D_NOT_LEARNING", "warning", first.step, first.epoch, evidence, suggestion)
    return settle(finding, points, flags, patience)
