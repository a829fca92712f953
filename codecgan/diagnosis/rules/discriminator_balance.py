"""Rules on the balance of discriminator and generator: a discriminator that does not learn (at chance), one whose
weights do not move (frozen), and one that overpowers the generator.

"Chance" is the discriminator loss of the best constant output, `diag/d_loss_chance` (the loss functions compute it:
least squares 0.5 per sub-discriminator, hinge 2, the metric discriminator twice the variance of its targets): what a
discriminator that cannot tell real from generated audio scores, and the least-squares GAN's equilibrium.
"""

from __future__ import annotations

import math

from codecgan.diagnosis import tags
from codecgan.diagnosis.findings import Finding, position
from codecgan.diagnosis.history import MetricHistory, Point
from codecgan.diagnosis.quality_metric import quality_metric
from codecgan.diagnosis.rules.quality import DIVERGENCE_MIN_DROP, DIVERGENCE_RELATIVE_DROP
from codecgan.diagnosis.trends import first_sustained, settle, theil_sen_slope

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
    margins = history.aligned(tags.D_MARGIN, rounds) if history.has(tags.D_MARGIN) else []
    values = {
        "chance": chance[index],
        "held_min_ratio": min(held),
        "held_max_ratio": max(held),
        "held_epochs": len(held),
        "epochs": len(ratios),
        "patience": patience,
        "first": position(rounds[index]),
        "update_ratio": updates[index] if has_updates else None,
        "margin": margins[index] if margins else None,
        "last_ratio": ratios[-1],
        "last": position(rounds[-1]),
        "frozen_ratio": FROZEN_RATIO,
    }
    first = rounds[index]
    finding = Finding("DISCRIMINATOR_AT_CHANCE", "warning", first.step, first.epoch, values)
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
    values = {
        "threshold": FROZEN_RATIO,
        "largest_ratio": max(p.value for p in points[index - patience + 1 : index + 1]),
        "patience": patience,
        "first": position(first),
        "last_ratio": last.value,
        "last": position(last),
    }
    finding = Finding("DISCRIMINATOR_FROZEN", "warning", first.step, first.epoch, values)
    return settle(finding, points, flags, patience)


def _min_drop(metric: str, best: float) -> float:
    """The smallest loss of quality that counts: the divergence rule's, in the metric's unit, else 5% of the best."""
    return DIVERGENCE_MIN_DROP.get(metric, DIVERGENCE_RELATIVE_DROP * abs(best) if best else DIVERGENCE_RELATIVE_DROP)


def discriminator_overpowering(history: MetricHistory, patience: int = OVERPOWERING_PATIENCE) -> Finding | None:
    """DISCRIMINATOR_OVERPOWERING: at a validation round at least `patience` rounds after the best validation quality,
    the D loss under 10% of chance over the last `patience` rounds, the generator's adversarial term (train/loss_adv)
    risen by 10% since the best (a Theil–Sen trend), and the quality worse than its best by the divergence rule's
    minimum, averaged over the last `patience` rounds. Quality is the family's quality metric
    (`codecgan.diagnosis.quality_metric`: val/pesq, else val/loss_mel, lower is better, else val/si_sdr, else
    val/snr_db)."""
    chosen = quality_metric(history)
    if chosen is None or not history.has(tags.TRAIN_LOSS_ADV):
        return None
    metric, mode = chosen
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
    values = {
        "loss_to_chance": ratios[index],
        "threshold": OVERPOWERING_RATIO,
        "adversarial_start": adv_start,
        "adversarial_end": adv_end,
        "adversarial_rise": rise,
        "metric": metric,
        "mode": mode,
        "best": best.value,
        "best_at": position(best),
        "value": first.value,
        "first": position(first),
        "mean_drop": drop,
        "min_drop": _min_drop(metric, best.value),
        "patience": patience,
    }
    finding = Finding("DISCRIMINATOR_OVERPOWERING", "warning", first.step, first.epoch, values)
    return settle(finding, rounds, flags, 1)
