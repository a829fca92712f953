"""Rules on the balance of discriminator and generator: a discriminator that does not learn (at chance), one whose
weights do not move (frozen), and one that overpowers the generator.

"Chance" is the discriminator loss of the best constant output, `diag/d_loss_chance` (the loss functions compute it:
least squares 0.5 per sub-discriminator, hinge 2, the metric discriminator twice the variance of its targets): what a
discriminator that cannot tell real from generated audio scores, and the least-squares GAN's equilibrium.
"""

from __future__ import annotations

import math

from codecgan.diagnosis import tags
from codecgan.diagnosis.findings import Finding
from codecgan.diagnosis.history import MetricHistory, Point
from codecgan.diagnosis.rules.quality import DIVERGENCE_MIN_DROP, DIVERGENCE_RELATIVE_DROP
from codecgan.diagnosis.trends import first_sustained, percent, settle, theil_sen_slope, where

# At 97% of the best constant's loss or above, the discriminator does no better than one that cannot tell.
AT_CHANCE_RATIO = 0.97
AT_CHANCE_PATIENCE = 3  # epochs
# A randomly initialised discriminator starts above chance (its outputs are not the best constant); one that learns
# comes down by more than 3% of chance per epoch until it is below, so an epoch that fell that much is not at chance.
AT_CHANCE_FALL = 0.03

# Adam-type optimizers move each weight by up to about the learning rate per step, so ‖Δθ‖/‖θ‖ is of the order of the
# learning rate over the weights' typical size: 1e-4 to 1e-2 per step for learning rates 1e-5 to 1e-3 (measured: 3e-3
# to 4e-3 on the tiny codec at 3e-4, 4e-3 to 1e-2 on the tiny enhancer at 2e-3). Under 1e-6 the weights do not move in
# any number of steps a run takes: a learning rate of 0 or decayed to nothing, gradients clipped to nothing, or every
# step skipped.
FROZEN_RATIO = 1e-6
FROZEN_PATIENCE = 3  # logging intervals

# Under 10% of chance the discriminator separates nearly every clip, and the generator's adversarial gradient comes
# from the few it still gets wrong.
OVERPOWERING_RATIO = 0.1
# The generator's adversarial term rising by 10% of its value at the quality peak: beyond its step-to-step noise.
OVERPOWERING_ADV_RISE = 0.1
OVERPOWERING_PATIENCE = 2  # validation rounds after the best; the quality's fall is averaged over them
# The validation quality a family is judged by, with its better direction: PESQ for an enhancer, the mel distance for a
# codec (GAN codecs trade waveform SNR for perceptual quality), SNR otherwise.
QUALITY_METRICS = ((tags.VAL_PESQ, "max"), (tags.VAL_LOSS_MEL, "min"), (tags.VAL_SNR, "max"))


def _ratio(loss: float | None, chance: float | None) -> float:
    if loss is None or chance is None or not chance or not math.isfinite(loss):
        return math.nan
    return loss / chance


def chance_ratios_per_epoch(history: MetricHistory) -> tuple[list[Point], list[float], list[float | None]]:
    """(rounds, D loss / chance, chance) per epoch: epoch medians of train/loss_d over the aligned chance values, or the
    logged diag/d_loss_to_chance when there is no loss/chance pair (chance then None)."""
    rounds = history.per_epoch(tags.TRAIN_LOSS_D)
    chance = history.aligned(tags.D_LOSS_CHANCE, rounds)
    ratios = [_ratio(p.value, c) for p, c in zip(rounds, chance)]
    if not any(math.isfinite(r) for r in ratios):
        rounds = history.per_epoch(tags.D_LOSS_TO_CHANCE)
        return rounds, [p.value for p in rounds], [None] * len(rounds)
    return rounds, ratios, chance


def chance_ratios_at(history: MetricHistory, rounds: list[Point]) -> list[float]:
    """D loss / chance over each round's interval (medians since the previous round), NaN where unknown."""
    losses, chance = history.aligned(tags.TRAIN_LOSS_D, rounds), history.aligned(tags.D_LOSS_CHANCE, rounds)
    ratios = [_ratio(loss, c) for loss, c in zip(losses, chance)]
    if any(math.isfinite(r) for r in ratios) or not history.has(tags.D_LOSS_TO_CHANCE):
        return ratios
    return [math.nan if r is None else r for r in history.aligned(tags.D_LOSS_TO_CHANCE, rounds)]


def _frozen(updates: list[float | None]) -> list[bool]:
    return [u is not None and u < FROZEN_RATIO for u in updates]


def discriminator_at_chance(history: MetricHistory, patience: int = AT_CHANCE_PATIENCE) -> Finding | None:
    """DISCRIMINATOR_AT_CHANCE: for `patience` epochs, the epoch-median D loss at or above 97% of its best-constant
    chance value without falling by 3% of chance from the epoch before, while the discriminator's weights move (a
    frozen one is DISCRIMINATOR_FROZEN instead; without diag/d_update_ratio the loss alone decides)."""
    rounds, ratios, chance = chance_ratios_per_epoch(history)
    has_updates = history.has(tags.D_UPDATE_RATIO)
    updates = history.aligned(tags.D_UPDATE_RATIO, rounds) if has_updates else [None] * len(rounds)
    frozen = _frozen(updates)
    falling = [i > 0 and ratios[i - 1] - ratios[i] >= AT_CHANCE_FALL for i in range(len(ratios))]  # NaN: not falling
    flags = [r >= AT_CHANCE_RATIO and not fell and not froze for r, fell, froze in zip(ratios, falling, frozen)]
    index = first_sustained(flags, patience)
    if index is None:
        return None
    held = [r for r, flag in zip(ratios, flags) if flag]
    chance_text = f"its chance value {chance[index]:.2f}" if chance[index] else "its chance value"
    moved = f", while its weights moved ({tags.D_UPDATE_RATIO} {updates[index]:.2g} per step)" if has_updates else ""
    margins = history.aligned(tags.D_MARGIN, rounds) if history.has(tags.D_MARGIN) else []
    margin = (
        f"; its mean output on real minus generated audio ({tags.D_MARGIN}) was {margins[index]:.4f}"
        if margins and margins[index] is not None
        else ""
    )
    evidence = (
        f"{tags.TRAIN_LOSS_D} stayed at {min(held):.1%}–{max(held):.1%} of {chance_text} (the loss of the best "
        f"constant output, what a discriminator that cannot tell real from generated audio scores) without falling in "
        f"{len(held)} of {len(ratios)} epochs, first for {patience} consecutive epochs by {where(rounds[index])}{moved}"
        f"{margin}; it was {ratios[-1]:.1%} of chance at {where(rounds[-1])}. A discriminator that learns falls below "
        f"chance within a few epochs."
    )
    suggestion = (
        f"If its weights move ({tags.D_UPDATE_RATIO} above {FROZEN_RATIO:g} per step; DISCRIMINATOR_FROZEN otherwise), "
        "it steps but scores no better than a constant: rerun with its learning rate ×10 or its gradient clipping "
        f"removed; if {tags.TRAIN_LOSS_D} then drops below chance it was starved, if not, check that real and "
        "generated audio reach it through the same preprocessing and that it is not too small or too constrained "
        "(grouped convolutions) for the audio."
    )
    first = rounds[index]
    finding = Finding("DISCRIMINATOR_AT_CHANCE", "warning", first.step, first.epoch, evidence, suggestion)
    return settle(finding, rounds, flags, patience)


def discriminator_frozen(history: MetricHistory, patience: int = FROZEN_PATIENCE) -> Finding | None:
    """DISCRIMINATOR_FROZEN: the discriminator's update ratio ‖Δθ_D‖ / ‖θ_D‖ per step (diag/d_update_ratio, logged for
    the intervals in which it was scheduled to step) under 1e-6 for `patience` consecutive logging intervals."""
    points = [p for p in history.series(tags.D_UPDATE_RATIO) if math.isfinite(p.value)]
    flags = [p.value < FROZEN_RATIO for p in points]
    index = first_sustained(flags, patience)
    if index is None:
        return None
    first, last = points[index], points[-1]
    largest = max(p.value for p in points[index - patience + 1 : index + 1])
    evidence = (
        f"{tags.D_UPDATE_RATIO} (the discriminator's update norm over its weight norm, per step) stayed under "
        f"{FROZEN_RATIO:g} (at most {largest:.2g}) for {patience} consecutive logging intervals by {where(first)}, and "
        f"was {last.value:.2g} at {where(last)}: the discriminator is scheduled to step, but its weights do not move, "
        f"so the generator trains against a fixed judge."
    )
    suggestion = (
        "Check the discriminator's learning rate and its scheduler (train/lr_d where logged), its gradient "
        "clipping (grad_clip_d), its skipped steps (diag/nonfinite_steps; updates drop_batch skips), and that "
        "optimizer_d holds the discriminator's parameters; a discriminator that learns moves 1e-4 to 1e-2 of its "
        "weight norm per step."
    )
    finding = Finding("DISCRIMINATOR_FROZEN", "warning", first.step, first.epoch, evidence, suggestion)
    return settle(finding, points, flags, patience)


def _min_drop(metric: str, best: float) -> float:
    """The smallest loss of quality that counts: the divergence rule's, in the metric's unit, else 5% of the best."""
    return DIVERGENCE_MIN_DROP.get(metric, DIVERGENCE_RELATIVE_DROP * abs(best) if best else DIVERGENCE_RELATIVE_DROP)


def discriminator_overpowering(history: MetricHistory, patience: int = OVERPOWERING_PATIENCE) -> Finding | None:
    """DISCRIMINATOR_OVERPOWERING: at a validation round at least `patience` rounds after the best validation quality,
    the D loss under 10% of chance over the last `patience` rounds, the generator's adversarial term (train/loss_adv)
    risen by 10% since the best (a Theil–Sen trend), and the quality worse than its best by the divergence rule's
    minimum, averaged over the last `patience` rounds. Quality is val/pesq (higher is better), else val/loss_mel (lower
    is better), else val/snr_db."""
    metric, mode = next(((tag, mode) for tag, mode in QUALITY_METRICS if history.has(tag)), (None, "max"))
    if metric is None or not history.has(tags.TRAIN_LOSS_ADV):
        return None
    rounds = [p for p in history.series(metric) if math.isfinite(p.value)]
    ratios = chance_ratios_at(history, rounds)
    adversarial = history.aligned(tags.TRAIN_LOSS_ADV, rounds)
    sign = 1.0 if mode == "max" else -1.0
    flags, details = [], []
    for i in range(len(rounds)):
        best_index = max(range(i + 1), key=lambda j: (sign * rounds[j].value, -j))
        best = rounds[best_index].value
        span = [a for a in adversarial[best_index : i + 1] if a is not None and math.isfinite(a)]
        if i - best_index < patience or len(span) < 2:
            flags.append(False)
            details.append(None)
            continue
        drop = sum(sign * (best - p.value) for p in rounds[i - patience + 1 : i + 1]) / patience
        rise = theil_sen_slope(span) * (len(span) - 1)
        overpowered = all(r < OVERPOWERING_RATIO for r in ratios[i - patience + 1 : i + 1])  # NaN: no
        adversarial_rose = rise > 0 and rise >= OVERPOWERING_ADV_RISE * abs(span[0])
        flags.append(overpowered and adversarial_rose and drop >= _min_drop(metric, best))
        details.append((best_index, span[0], span[-1], rise, drop))
    if not any(flags):
        return None
    index = flags.index(True)
    best_index, adv_start, adv_end, rise, drop = details[index]
    best, first = rounds[best_index], rounds[index]
    worse = "fell" if sign > 0 else "rose"
    evidence = (
        f"{tags.TRAIN_LOSS_D} was {percent(ratios[index])} of its chance value (under {percent(OVERPOWERING_RATIO)}: "
        f"the discriminator separates almost every clip) while the generator's adversarial term {tags.TRAIN_LOSS_ADV} "
        f"rose from {adv_start:.3f} to {adv_end:.3f} ({percent(rise / abs(adv_start)) if adv_start else 'from 0'} on "
        f"its trend) and {metric} {worse} from its best {best.value:.3f} at {where(best)} to {first.value:.3f} at "
        f"{where(first)} ({abs(drop):.3f} on average over the last {patience} rounds, beyond "
        f"{_min_drop(metric, best.value):.3g}): the generator chases a discriminator it cannot fool, at the cost of "
        f"quality (metallic or harmonic artefacts are typical)."
    )
    suggestion = (
        f"Rerun from the checkpoint at the best {metric} with the discriminator's learning rate halved or "
        "discriminator_update_period: 2, or with the adversarial weight lowered: if the quality then holds while "
        f"{tags.TRAIN_LOSS_D} stays above {percent(OVERPOWERING_RATIO)} of chance, the discriminator was overpowering "
        f"the generator. Select checkpoints on {metric}, not on the losses."
    )
    finding = Finding("DISCRIMINATOR_OVERPOWERING", "warning", first.step, first.epoch, evidence, suggestion)
    return settle(finding, rounds, flags, 1)
