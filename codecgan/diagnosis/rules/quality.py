"""Rules on validation quality: the loss/metric divergence, negative SNR, unstable level, length and crop bugs."""

from __future__ import annotations

import math

from codecgan.diagnosis import tags
from codecgan.diagnosis.findings import Finding, position
from codecgan.diagnosis.history import MetricHistory, Point
from codecgan.diagnosis.quality_metric import base_tag, direction, quality_metric
from codecgan.diagnosis.trends import as_info, decibels, finite, first_sustained, settle, theil_sen_slope

LOSS_CANDIDATES = (tags.TRAIN_LOSS_G, tags.TRAIN_LOSS)
# Smallest fall from the best that counts, in the metric's unit. 0.1 MOS is about three times the round-to-round
# jitter of validation PESQ on fixed crops, and 0.5 dB is the same margin for SNR/SI-SDR.
DIVERGENCE_MIN_DROP = {tags.VAL_PESQ: 0.1, tags.VAL_SNR: 0.5, tags.VAL_SI_SDR: 0.5}
# For other metrics: 5% of the best value, a fall no plateau's noise produces in practice.
DIVERGENCE_RELATIVE_DROP = 0.05
# Rounds the metric must stay below its best; the fall is averaged over this many rounds, so one bad round is not
# enough.
DIVERGENCE_PATIENCE = 2
# The robust (Theil–Sen) trend since the best must account for at least this share of the minimum fall.
DIVERGENCE_TREND_SHARE = 0.5

# Below 0 dB the error has more energy than the reference: an all-zero output would score higher.
NEGATIVE_SNR_DB = 0.0
NEGATIVE_SNR_PATIENCE = 2
# A codec's negative SNR is info when, over at least this many rounds, its robust trend has not fallen by more than
# NEGATIVE_SNR_FALL_DB (the divergence rule's margin for SNR) while its mel distance fell.
NEGATIVE_SNR_IMPROVING_ROUNDS = 3
NEGATIVE_SNR_FALL_DB = 0.5
# About the just-noticeable loudness difference; a codec or enhancer should keep the level within it.
AMPLITUDE_TOLERANCE_DB = 1.0
AMPLITUDE_PATIENCE = 2
# A DC offset above half the reference's RMS carries a quarter of the reference's power: enough to explain a level or
# SNR finding by itself (a tanh output stuck near +1 on speech at -20 dBFS gives about 10).
DC_OFFSET_NOTABLE = 0.5
# A generator trained on a log-mel loss is quiet until it can place the harmonics: for an estimate with the
# reference's energy but smeared harmonics the log-mel L1 is lowest about 2 dB below the reference's level
# (tests/losses/test_mel.py), and DAC's discriminators normalise the level away, so nothing else pulls it up. While
# the validation mel loss still falls by this share over this many rounds, a level below the reference is a warm-up.
MEL_WARMUP_FALL = 0.05
MEL_WARMUP_ROUNDS = 3
# PESQ ignores level, so an enhancer's metric discriminator cannot teach gain and its output stays below the clean
# reference's level until the spectral losses pull it up. While validation PESQ still rises by this much (the
# divergence rule's margin, about three times its round-to-round jitter) over MEL_WARMUP_ROUNDS rounds, a level below
# the reference is a warm-up too.
PESQ_WARMUP_GAIN = DIVERGENCE_MIN_DROP[tags.VAL_PESQ]


def _first_present(history: MetricHistory, candidates: tuple[str, ...]) -> str | None:
    return next((tag for tag in candidates if history.has(tag)), None)


def _finite_points(history: MetricHistory, tag: str) -> list[Point]:
    return [p for p in history.series(tag) if math.isfinite(p.value)]


def _dc_offset(history: MetricHistory) -> Point | None:
    """The latest round's DC offset (over the reference's RMS) when it is large, else None: a cause of wrong level and
    SNR that no DAC loss sees."""
    points = _finite_points(history, tags.VAL_DC_OFFSET)
    if not points or points[-1].value < DC_OFFSET_NOTABLE:
        return None
    return points[-1]


def _dc_offset_values(history: MetricHistory) -> dict:
    """The values naming a large DC offset: its ratio to the reference's RMS and where (both None without one)."""
    offset = _dc_offset(history)
    return {
        "dc_offset": offset.value if offset is not None else None,
        "dc_offset_at": position(offset) if offset is not None else None,
    }


def loss_metric_divergence(
    history: MetricHistory,
    metric: str | None = None,
    loss: str | None = None,
    mode: str | None = None,
    min_drop: float | None = None,
    patience: int = DIVERGENCE_PATIENCE,
) -> Finding | None:
    """LOSS_METRIC_DIVERGENCE: the validation metric keeps getting worse than its best while the training loss keeps
    falling.

    Holds at the first round that is at least `patience` rounds after the best, where the loss of quality averaged
    over the last `patience` rounds exceeds `min_drop`, the metric's Theil–Sen trend since the best points the wrong
    way, and the loss's trend over the same rounds points down. `metric` defaults to the family's quality metric
    (`codecgan.diagnosis.quality_metric`: PESQ for an enhancer, the mel distance for a codec); `mode` ("max" or "min")
    to that metric's better direction ("max" for a metric that is not a quality candidate).
    """
    if metric is None:
        chosen = quality_metric(history)
        metric = chosen[0] if chosen else None
    loss = loss or _first_present(history, LOSS_CANDIDATES)
    if metric is None or loss is None:
        return None
    mode = mode or direction(metric)
    rounds = _finite_points(history, metric)
    losses = history.aligned(loss, rounds)
    sign = 1.0 if mode == "max" else -1.0
    for i in range(len(rounds)):
        best_index = max(range(i + 1), key=lambda j: (sign * rounds[j].value, -j))
        best = rounds[best_index].value
        threshold = min_drop if min_drop is not None else _default_min_drop(metric, best)
        if i - best_index < patience:
            continue
        recent_drop = sum(sign * (best - p.value) for p in rounds[i - patience + 1 : i + 1]) / patience
        span = [p.value for p in rounds[best_index : i + 1]]
        metric_fall = -sign * theil_sen_slope(span) * (len(span) - 1)
        loss_slope = theil_sen_slope(losses[best_index : i + 1])
        if recent_drop >= threshold and metric_fall >= DIVERGENCE_TREND_SHARE * threshold and loss_slope < 0:
            return _divergence_finding(metric, loss, rounds, losses, best_index, i, threshold, patience, sign)
    return None


def _default_min_drop(metric: str, best: float) -> float:
    base = base_tag(metric)
    if base in DIVERGENCE_MIN_DROP:
        return DIVERGENCE_MIN_DROP[base]
    return DIVERGENCE_RELATIVE_DROP * abs(best) if best else DIVERGENCE_RELATIVE_DROP


def _divergence_finding(metric, loss, rounds, losses, best_index, first_index, threshold, patience, sign) -> Finding:
    after = range(best_index + 1, len(rounds))
    worst_index = min(after, key=lambda j: sign * rounds[j].value)
    best, worst = rounds[best_index], rounds[worst_index]
    loss_start, loss_end = losses[best_index], losses[worst_index]
    loss_change = (loss_end - loss_start) / abs(loss_start) if loss_start and loss_end is not None else math.nan
    first = rounds[first_index]
    values = {
        "metric": metric,
        "loss": loss,
        "mode": "max" if sign > 0 else "min",
        "best": best.value,
        "best_at": position(best),
        "worst": worst.value,
        "worst_at": position(worst),
        "loss_start": loss_start,
        "loss_end": loss_end,
        "loss_change": loss_change,
        "threshold": threshold,
        "patience": patience,
        "first": position(first),
    }
    return Finding("LOSS_METRIC_DIVERGENCE", "critical", first.step, first.epoch, values)


def negative_snr(history: MetricHistory, patience: int = NEGATIVE_SNR_PATIENCE) -> Finding | None:
    """NEGATIVE_SNR: validation SNR below 0 dB for `patience` consecutive rounds.

    None for a vocoder (a history with `val/mel_distance`): it generates a waveform from a mel spectrogram, which holds
    no phase, so its estimate need not be in phase with the reference and its SNR sits near or below 0 dB however
    good it sounds."""
    if history.has(tags.VAL_MEL_DISTANCE):
        return None
    rounds = _finite_points(history, tags.VAL_SNR)
    flags = [p.value < NEGATIVE_SNR_DB for p in rounds]
    index = first_sustained(flags, patience)
    if index is None:
        return None
    episode = rounds[index - patience + 1 : index + 1]
    si_sdr = finite([p.value for p in history.series(tags.VAL_SI_SDR)])
    values = {
        "threshold_db": NEGATIVE_SNR_DB,
        "patience": patience,
        "episode": [{"snr_db": p.value, "at": position(p)} for p in episode],
        "last_snr_db": rounds[-1].value,
        "si_sdr_db": si_sdr[-1] if si_sdr else None,
        **_dc_offset_values(history),
    }
    first = rounds[index]
    finding = settle(Finding("NEGATIVE_SNR", "warning", first.step, first.epoch, values), rounds, flags, patience)
    improving = _improving_codec(history, rounds) if finding.severity == "warning" else None
    return as_info(finding, "improving_codec", **improving) if improving else finding


def _improving_codec(history: MetricHistory, rounds: list[Point]) -> dict | None:
    """The numbers saying the negative SNR is a codec improving (None if it is not): over the run the SNR's robust
    trend has not fallen by `NEGATIVE_SNR_FALL_DB`, the mel distance's has fallen, and the level is not a warning
    (AMPLITUDE_UNSTABLE above info, or a large DC offset). A GAN codec trades waveform SNR for perceptual quality
    and a low-bitrate one sits below 0 dB while it improves."""
    if len(rounds) < NEGATIVE_SNR_IMPROVING_ROUNDS:
        return None
    mel = history.aligned(tags.VAL_LOSS_MEL, rounds)
    if any(m is None or not math.isfinite(m) for m in mel):
        return None
    snr_change = theil_sen_slope([p.value for p in rounds]) * (len(rounds) - 1)
    mel_change = theil_sen_slope(mel) * (len(rounds) - 1)
    level = amplitude_unstable(history)
    if not (snr_change >= -NEGATIVE_SNR_FALL_DB and mel_change < 0):
        return None
    if (level is not None and level.severity != "info") or _dc_offset(history) is not None:
        return None
    return {
        "rounds": len(rounds),
        "snr_change_db": snr_change,
        "snr_start_db": rounds[0].value,
        "snr_end_db": rounds[-1].value,
        "mel_start": mel[0],
        "mel_end": mel[-1],
        "fall_threshold_db": NEGATIVE_SNR_FALL_DB,
    }


def amplitude_unstable(history: MetricHistory, patience: int = AMPLITUDE_PATIENCE) -> Finding | None:
    """AMPLITUDE_UNSTABLE: RMS(estimate)/RMS(reference) off by more than 1 dB for `patience` consecutive rounds."""
    rounds = [p for p in _finite_points(history, tags.VAL_AMPLITUDE_RATIO) if p.value > 0]
    levels = [decibels(p.value) for p in rounds]
    flags = [abs(db) > AMPLITUDE_TOLERANCE_DB for db in levels]
    index = first_sustained(flags, patience)
    if index is None:
        return None
    episode = list(range(index - patience + 1, index + 1))
    dc_offset = _dc_offset_values(history)
    values = {
        "episode": [{"ratio": rounds[j].value, "level_db": levels[j], "at": position(rounds[j])} for j in episode],
        "tolerance_db": AMPLITUDE_TOLERANCE_DB,
        "patience": patience,
        "min_level_db": min(levels),
        "max_level_db": max(levels),
        **dc_offset,
    }
    first = rounds[index]
    finding = settle(Finding("AMPLITUDE_UNSTABLE", "warning", first.step, first.epoch, values), rounds, flags, patience)
    quiet_now = all(level < -AMPLITUDE_TOLERANCE_DB for level in levels[-patience:])
    if finding.severity != "warning" or dc_offset["dc_offset"] is not None:
        return finding
    if untrained := _level_untrained(history):
        return as_info(finding, "level_untrained", **untrained)
    if not quiet_now:
        return finding
    if warm_up := _mel_warm_up(history):
        return as_info(finding, "mel_warm_up", **warm_up)
    if warm_up := _pesq_warm_up(history):
        return as_info(finding, "pesq_warm_up", **warm_up)
    return finding


def _level_untrained(history: MetricHistory) -> dict | None:
    """The numbers saying nothing trains the level (None if something does): the generator's only loss term is the
    adversarial one (MetricGAN+'s recipe: ``train/loss_adv`` against a PESQ-predicting discriminator, and PESQ ignores
    level), so the output's level is whatever the mask or decoder starts with."""
    if not history.has(tags.TRAIN_LOSS_ADV):
        return None
    logged = {base_tag(tag) for tag in history.tags_with_prefix("train/loss_")}
    terms = [
        tag
        for tag in logged
        if tag not in (tags.TRAIN_LOSS_G, tags.TRAIN_LOSS_ADV, tags.TRAIN_LOSS_D)
        and not tag.startswith(tags.TRAIN_LOSS_D + "_")  # the discriminator's own terms
    ]
    return None if terms else {"generator_terms": [tags.TRAIN_LOSS_ADV]}


def _pesq_warm_up(history: MetricHistory) -> dict | None:
    """The numbers saying validation PESQ is still rising fast (None if it is not, or is not logged): while it rises,
    an enhancer's output below the reference's level is its warm-up, not a fault."""
    points = _finite_points(history, tags.VAL_PESQ)
    if len(points) <= MEL_WARMUP_ROUNDS:
        return None
    before, last = points[-1 - MEL_WARMUP_ROUNDS], points[-1]
    if last.value - before.value < PESQ_WARMUP_GAIN:
        return None
    return {
        "pesq_before": before.value,
        "before_at": position(before),
        "pesq_last": last.value,
        "last_at": position(last),
        "min_gain": PESQ_WARMUP_GAIN,
        "rounds": MEL_WARMUP_ROUNDS,
    }


def _mel_warm_up(history: MetricHistory) -> dict | None:
    """The numbers saying the validation mel loss (the codec's `val/loss_mel` or the vocoder's `val/mel_distance`) is
    still falling fast (None if it is not, or neither is logged): while it falls, a log-mel-trained generator's output
    below the reference's level is its warm-up, not a fault."""
    tag = _first_present(history, tags.VAL_MEL_MEASURES) or tags.VAL_LOSS_MEL
    points = _finite_points(history, tag)
    if len(points) <= MEL_WARMUP_ROUNDS:
        return None
    before, last = points[-1 - MEL_WARMUP_ROUNDS], points[-1]
    if before.value <= 0 or (before.value - last.value) / before.value < MEL_WARMUP_FALL:
        return None
    return {
        "mel_tag": tag,
        "mel_before": before.value,
        "before_at": position(before),
        "mel_last": last.value,
        "last_at": position(last),
        "min_fall": MEL_WARMUP_FALL,
        "rounds": MEL_WARMUP_ROUNDS,
    }


def length_mismatch(history: MetricHistory) -> Finding | None:
    """LENGTH_MISMATCH: any validation round where estimates and references differ in length."""
    rounds = _finite_points(history, tags.LENGTH_MISMATCH)
    bad = [p for p in rounds if p.value > 0]
    if not bad:
        return None
    first = bad[0]
    values = {"clips": first.value, "first": position(first), "bad_rounds": len(bad), "rounds": len(rounds)}
    return Finding("LENGTH_MISMATCH", "warning", first.step, first.epoch, values)


def eval_nondeterministic(history: MetricHistory) -> Finding | None:
    """EVAL_NONDETERMINISTIC: validation items whose input audio changed since the previous round."""
    rounds = _finite_points(history, tags.EVAL_INPUT_CHANGED)
    bad = [p for p in rounds if p.value > 0]
    if not bad:
        return None
    first = bad[0]
    fractions = {(p.step, p.epoch): p.value for p in history.series(tags.EVAL_INPUT_CHANGED_FRACTION)}
    values = {
        "items": first.value,
        "changed_fraction": fractions.get((first.step, first.epoch)),
        "first": position(first),
        "changed_rounds": len(bad),
        "rounds": len(rounds),
    }
    return Finding("EVAL_NONDETERMINISTIC", "warning", first.step, first.epoch, values)
