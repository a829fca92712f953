"""Rules on validation quality: the loss/metric divergence, negative SNR, unstable level, length and crop bugs."""

from __future__ import annotations

import math

from codecgan.diagnosis import tags
from codecgan.diagnosis.findings import Finding
from codecgan.diagnosis.history import MetricHistory, Point
from codecgan.diagnosis.trends import (
    as_info,
    decibels,
    finite,
    first_sustained,
    percent,
    settle,
    theil_sen_slope,
    where,
)

# The validation quality each family is judged by, in order, with its better direction. An enhancer logs PESQ. A codec
# logs its mel distance: GAN codecs trade waveform SNR for perceptual quality, and a low-bitrate codec can sit below
# 0 dB SNR while it improves, so its divergence is read on the mel distance; SI-SDR and SNR are the fallbacks.
METRIC_CANDIDATES = (
    (tags.VAL_PESQ, "max"),
    (tags.VAL_LOSS_MEL, "min"),
    (tags.VAL_SI_SDR, "max"),
    (tags.VAL_SNR, "max"),
)
METRIC_MODES = dict(METRIC_CANDIDATES)
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


def _first_present(history: MetricHistory, candidates: tuple[str, ...]) -> str | None:
    return next((tag for tag in candidates if history.has(tag)), None)


def _finite_points(history: MetricHistory, tag: str) -> list[Point]:
    return [p for p in history.series(tag) if math.isfinite(p.value)]


def _dc_offset_evidence(history: MetricHistory) -> str:
    """A sentence naming a large DC offset in the latest round (empty if there is none): a cause of wrong level and
    SNR that no DAC loss sees."""
    points = _finite_points(history, tags.VAL_DC_OFFSET)
    if not points or points[-1].value < DC_OFFSET_NOTABLE:
        return ""
    last = points[-1]
    return (
        f" The estimate's DC offset ({tags.VAL_DC_OFFSET}) was {last.value:.2f} times the reference's RMS at "
        f"{where(last)}: DC that DAC-style losses cannot see (the discriminators subtract each clip's mean, the mel "
        f"filters give 0 Hz no weight); a waveform L1 term (loss_weights.waveform) trains it away."
    )


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
    way, and the loss's trend over the same rounds points down. `metric` defaults to the first logged of
    `METRIC_CANDIDATES` (PESQ for an enhancer, the mel distance for a codec); `mode` ("max" or "min") to that
    metric's better direction ("max" for metrics not listed there).
    """
    metric = metric or _first_present(history, tuple(METRIC_MODES))
    loss = loss or _first_present(history, LOSS_CANDIDATES)
    if metric is None or loss is None:
        return None
    mode = mode or METRIC_MODES.get(metric.removesuffix("_epoch"), "max")
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
    base = metric.removesuffix("_epoch").removesuffix("_step")
    if base in DIVERGENCE_MIN_DROP:
        return DIVERGENCE_MIN_DROP[base]
    return DIVERGENCE_RELATIVE_DROP * abs(best) if best else DIVERGENCE_RELATIVE_DROP


def _divergence_finding(metric, loss, rounds, losses, best_index, first_index, threshold, patience, sign) -> Finding:
    after = range(best_index + 1, len(rounds))
    worst_index = min(after, key=lambda j: sign * rounds[j].value)
    best, worst = rounds[best_index], rounds[worst_index]
    loss_start, loss_end = losses[best_index], losses[worst_index]
    loss_change = (loss_end - loss_start) / abs(loss_start) if loss_start and loss_end is not None else math.nan
    direction = "fell" if loss_change < 0 else "changed"
    evidence = (
        f"{metric} {'fell' if sign > 0 else 'rose'} {abs(best.value - worst.value):.2f} from its best {best.value:.2f} "
        f"at {where(best)} to {worst.value:.2f} at {where(worst)} while {loss} {direction} "
        f"{percent(abs(loss_change))} over the same rounds; the fall first exceeded {threshold:g} "
        f"(averaged over {patience} rounds) at {where(rounds[first_index])}."
    )
    suggestion = (
        f"Keep the best checkpoint (DivergenceMonitor(action='warn_and_checkpoint_best')) and rerun from it with the "
        f"adversarial weight halved, then with the generator learning rate halved: if {metric} holds, the generator "
        f"trades {metric} for a lower {loss}, so select checkpoints on {metric}, not on the loss."
    )
    first = rounds[first_index]
    return Finding("LOSS_METRIC_DIVERGENCE", "critical", first.step, first.epoch, evidence, suggestion)


def negative_snr(history: MetricHistory, patience: int = NEGATIVE_SNR_PATIENCE) -> Finding | None:
    """NEGATIVE_SNR: validation SNR below 0 dB for `patience` consecutive rounds."""
    rounds = _finite_points(history, tags.VAL_SNR)
    flags = [p.value < NEGATIVE_SNR_DB for p in rounds]
    index = first_sustained(flags, patience)
    if index is None:
        return None
    episode = rounds[index - patience + 1 : index + 1]
    listed = ", ".join(f"{p.value:.2f} dB at {where(p)}" for p in episode)
    evidence = (
        f"{tags.VAL_SNR} was below 0 dB in {patience} consecutive validation rounds ({listed}); the last round gave "
        f"{rounds[-1].value:.2f} dB, so the reconstruction error carries more energy than the reference itself."
    )
    si_sdr = finite([p.value for p in history.series(tags.VAL_SI_SDR)])
    if si_sdr:
        evidence = evidence[:-1] + f", while {tags.VAL_SI_SDR} was {si_sdr[-1]:.2f} dB."
    evidence += _dc_offset_evidence(history)
    suggestion = (
        f"Compare {tags.VAL_SI_SDR} with {tags.VAL_SNR}: if SI-SDR is much higher the output is mis-scaled or delayed "
        f"(see {tags.VAL_AMPLITUDE_RATIO} and the generator's output alignment); otherwise rerun with the "
        f"reconstruction (mel/waveform) weight doubled or the adversarial weights halved and check that SNR turns "
        f"positive."
    )
    first = rounds[index]
    finding = settle(
        Finding("NEGATIVE_SNR", "warning", first.step, first.epoch, evidence, suggestion), rounds, flags, patience
    )
    improving = _improving_codec(history, rounds) if finding.severity == "warning" else ""
    return as_info(finding, improving) if improving else finding


def _improving_codec(history: MetricHistory, rounds: list[Point]) -> str:
    """A sentence saying the negative SNR is a codec improving (empty if it is not): over the run the SNR's robust
    trend has not fallen by `NEGATIVE_SNR_FALL_DB`, the mel distance's has fallen, and the level is not a warning
    (AMPLITUDE_UNSTABLE above info, or a large DC offset). A GAN codec trades waveform SNR for perceptual quality
    and a low-bitrate one sits below 0 dB while it improves."""
    if len(rounds) < NEGATIVE_SNR_IMPROVING_ROUNDS:
        return ""
    mel = history.aligned(tags.VAL_LOSS_MEL, rounds)
    if any(m is None or not math.isfinite(m) for m in mel):
        return ""
    snr_change = theil_sen_slope([p.value for p in rounds]) * (len(rounds) - 1)
    mel_change = theil_sen_slope(mel) * (len(rounds) - 1)
    level = amplitude_unstable(history)
    if not (snr_change >= -NEGATIVE_SNR_FALL_DB and mel_change < 0):
        return ""
    if (level is not None and level.severity != "info") or _dc_offset_evidence(history):
        return ""
    return (
        f" It is reported as info because the codec is improving: over its {len(rounds)} rounds {tags.VAL_SNR} "
        f"moved {snr_change:+.2f} dB on its robust trend ({rounds[0].value:.2f} to {rounds[-1].value:.2f} dB) while "
        f"{tags.VAL_LOSS_MEL} fell from {mel[0]:.3f} to {mel[-1]:.3f}, with no level warning (GAN codecs trade "
        f"waveform SNR for perceptual quality; low-bitrate ones sit below 0 dB). It becomes a warning if the SNR "
        f"falls by more than {NEGATIVE_SNR_FALL_DB:g} dB, the mel distance stops falling or the level becomes a "
        f"warning."
    )


def amplitude_unstable(history: MetricHistory, patience: int = AMPLITUDE_PATIENCE) -> Finding | None:
    """AMPLITUDE_UNSTABLE: RMS(estimate)/RMS(reference) off by more than 1 dB for `patience` consecutive rounds."""
    rounds = [p for p in _finite_points(history, tags.VAL_AMPLITUDE_RATIO) if p.value > 0]
    levels = [decibels(p.value) for p in rounds]
    flags = [abs(db) > AMPLITUDE_TOLERANCE_DB for db in levels]
    index = first_sustained(flags, patience)
    if index is None:
        return None
    episode = list(range(index - patience + 1, index + 1))
    dc_offset = _dc_offset_evidence(history)
    listed = " and ".join(f"{rounds[j].value:.3f} ({levels[j]:+.2f} dB) at {where(rounds[j])}" for j in episode)
    evidence = (
        f"{tags.VAL_AMPLITUDE_RATIO} (RMS of estimate / RMS of reference) was {listed}, outside ±"
        f"{AMPLITUDE_TOLERANCE_DB:g} dB in {patience} consecutive rounds; over the run it spanned "
        f"{max(levels) - min(levels):.2f} dB ({min(levels):+.2f} to {max(levels):+.2f} dB)."
    ) + dc_offset
    suggestion = (
        f"Watch {tags.VAL_PEAK_RATIO} and {tags.VAL_CLIPPED_FRACTION} next to it, then rerun with a waveform L1 term "
        f"(weight about 1) or with the discriminators' peak normalisation changed, and check that the ratio settles "
        f"within ±{AMPLITUDE_TOLERANCE_DB:g} dB."
    )
    first = rounds[index]
    finding = settle(
        Finding("AMPLITUDE_UNSTABLE", "warning", first.step, first.epoch, evidence, suggestion), rounds, flags, patience
    )
    quiet_now = all(level < -AMPLITUDE_TOLERANCE_DB for level in levels[-patience:])
    warm_up = _mel_warm_up(history) if quiet_now and finding.severity == "warning" else ""
    if warm_up and not dc_offset:
        return as_info(finding, warm_up)
    return finding


def _mel_warm_up(history: MetricHistory) -> str:
    """A sentence saying the validation mel loss is still falling fast (empty if it is not, or is not logged): while
    it falls, a log-mel-trained generator's output below the reference's level is its warm-up, not a fault."""
    points = _finite_points(history, tags.VAL_LOSS_MEL)
    if len(points) <= MEL_WARMUP_ROUNDS:
        return ""
    before, last = points[-1 - MEL_WARMUP_ROUNDS], points[-1]
    if before.value <= 0 or (before.value - last.value) / before.value < MEL_WARMUP_FALL:
        return ""
    return (
        f" It is reported as info because {tags.VAL_LOSS_MEL} is still falling ({before.value:.2f} at {where(before)}, "
        f"{last.value:.2f} at {where(last)}, {percent((before.value - last.value) / before.value)} lower): a generator "
        f"trained on a log-mel loss is quiet until it can place the harmonics (the log-mel L1 of a smeared estimate is "
        f"lowest below the reference's level, and DAC's discriminators normalise the level away). It becomes a "
        f"warning if the loss falls by less than {percent(MEL_WARMUP_FALL)} over {MEL_WARMUP_ROUNDS} rounds while the "
        f"output is still quiet."
    )


def length_mismatch(history: MetricHistory) -> Finding | None:
    """LENGTH_MISMATCH: any validation round where estimates and references differ in length."""
    rounds = _finite_points(history, tags.LENGTH_MISMATCH)
    bad = [p for p in rounds if p.value > 0]
    if not bad:
        return None
    first = bad[0]
    evidence = (
        f"{tags.LENGTH_MISMATCH} counted {first.value:.0f} validation clips at {where(first)} whose estimate length "
        f"differed from the reference or fell short of the true length; {len(bad)} of {len(rounds)} rounds had "
        f"such clips."
    )
    suggestion = (
        "Run the generator on a clip whose length is not a multiple of its hop size and compare shapes; fix the padding "
        "or ISTFT length so metrics are not computed on trimmed or zero-padded tails."
    )
    return Finding("LENGTH_MISMATCH", "warning", first.step, first.epoch, evidence, suggestion)


def eval_nondeterministic(history: MetricHistory) -> Finding | None:
    """EVAL_NONDETERMINISTIC: validation items whose input audio changed since the previous round."""
    rounds = _finite_points(history, tags.EVAL_INPUT_CHANGED)
    bad = [p for p in rounds if p.value > 0]
    if not bad:
        return None
    first = bad[0]
    fractions = {(p.step, p.epoch): p.value for p in history.series(tags.EVAL_INPUT_CHANGED_FRACTION)}
    share = fractions.get((first.step, first.epoch))
    share_text = f" ({percent(share)} of those seen twice)" if share is not None else ""
    evidence = (
        f"{first.value:.0f} validation items{share_text} had different input audio at {where(first)} than in the "
        f"previous validation round, so validation scores move with the crops rather than with the model; "
        f"{len(bad)} of {len(rounds)} compared rounds changed."
    )
    suggestion = (
        "Use deterministic validation crops (CroppedDataset mode='center' or 'start' for the validation set) and check "
        f"that {tags.EVAL_INPUT_CHANGED} stays 0."
    )
    return Finding("EVAL_NONDETERMINISTIC", "warning", first.step, first.epoch, evidence, suggestion)
