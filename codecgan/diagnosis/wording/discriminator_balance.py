"""The wording of the findings of `codecgan.diagnosis.rules.discriminator_balance`."""

from __future__ import annotations

from typing import Any, Mapping

from codecgan.diagnosis import tags
from codecgan.diagnosis.wording.phrases import percent, where


def discriminator_at_chance(v: Mapping[str, Any]) -> tuple[str, str]:
    chance_text = f"its chance value {v['chance']:.2f}" if v["chance"] else "its chance value"
    moved = (
        f", while its weights moved ({tags.D_UPDATE_RATIO} {v['update_ratio']:.2g} per step)"
        if v["update_ratio"] is not None
        else ""
    )
    margin = (
        f"; its mean output on real minus generated audio ({tags.D_MARGIN}) was {v['margin']:.4f}"
        if v["margin"] is not None
        else ""
    )
    evidence = (
        f"{tags.TRAIN_LOSS_D} stayed at {v['held_min_ratio']:.1%}–{v['held_max_ratio']:.1%} of {chance_text} (the loss "
        f"of the best constant output, what a discriminator that cannot tell real from generated audio scores) without "
        f"falling in {v['held_epochs']} of {v['epochs']} epochs, first for {v['patience']} consecutive epochs by "
        f"{where(v['first'])}{moved}{margin}; it was {v['last_ratio']:.1%} of chance at {where(v['last'])}. A "
        f"discriminator that learns falls below chance within a few epochs."
    )
    suggestion = (
        f"If its weights move ({tags.D_UPDATE_RATIO} above {v['frozen_ratio']:g} per step; DISCRIMINATOR_FROZEN "
        "otherwise), it steps but scores no better than a constant: rerun with its learning rate ×10 or its gradient "
        f"clipping removed; if {tags.TRAIN_LOSS_D} then drops below chance it was starved, if not, check that real and "
        "generated audio reach it through the same preprocessing and that it is not too small or too constrained "
        "(grouped convolutions) for the audio."
    )
    return evidence, suggestion


def discriminator_frozen(v: Mapping[str, Any]) -> tuple[str, str]:
    evidence = (
        f"{tags.D_UPDATE_RATIO} (the discriminator's update norm over its weight norm, per step) stayed under "
        f"{v['threshold']:g} (at most {v['largest_ratio']:.2g}) for {v['patience']} consecutive logging intervals by "
        f"{where(v['first'])}, and was {v['last_ratio']:.2g} at {where(v['last'])}: the discriminator is scheduled to "
        f"step, but its weights do not move, so the generator trains against a fixed judge."
    )
    suggestion = (
        "Check the discriminator's learning rate and its scheduler (train/lr_d where logged), its gradient "
        "clipping (grad_clip_d), its skipped steps (diag/nonfinite_steps; updates drop_batch skips), and that "
        "optimizer_d holds the discriminator's parameters; a discriminator that learns moves 1e-4 to 1e-2 of its "
        "weight norm per step."
    )
    return evidence, suggestion


def discriminator_overpowering(v: Mapping[str, Any]) -> tuple[str, str]:
    metric, start = v["metric"], v["adversarial_start"]
    worse = "fell" if v["mode"] == "max" else "rose"
    rise = percent(v["adversarial_rise"] / abs(start)) if start else "from 0"
    evidence = (
        f"{tags.TRAIN_LOSS_D} was {percent(v['loss_to_chance'])} of its chance value (under {percent(v['threshold'])}: "
        f"the discriminator separates almost every clip) while the generator's adversarial term {tags.TRAIN_LOSS_ADV} "
        f"rose from {start:.3f} to {v['adversarial_end']:.3f} ({rise} on its trend) and {metric} {worse} from its best "
        f"{v['best']:.3f} at {where(v['best_at'])} to {v['value']:.3f} at {where(v['first'])} "
        f"({abs(v['mean_drop']):.3f} on average over the last {v['patience']} rounds, beyond {v['min_drop']:.3g}): the "
        f"generator chases a discriminator it cannot fool, at the cost of quality (metallic or harmonic artefacts are "
        f"typical)."
    )
    suggestion = (
        f"Rerun from the checkpoint at the best {metric} with the discriminator's learning rate halved or "
        "discriminator_update_period: 2, or with the adversarial weight lowered: if the quality then holds while "
        f"{tags.TRAIN_LOSS_D} stays above {percent(v['threshold'])} of chance, the discriminator was overpowering "
        f"the generator. Select checkpoints on {metric}, not on the losses."
    )
    return evidence, suggestion


WORDING = {
    "DISCRIMINATOR_AT_CHANCE": discriminator_at_chance,
    "DISCRIMINATOR_FROZEN": discriminator_frozen,
    "DISCRIMINATOR_OVERPOWERING": discriminator_overpowering,
}
INFO_NOTES: dict = {}
