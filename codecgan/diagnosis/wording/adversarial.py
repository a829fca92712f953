"""The wording of the findings of `codecgan.diagnosis.rules.adversarial`."""

from __future__ import annotations

from typing import Any, Mapping

from codecgan.diagnosis import tags
from codecgan.diagnosis.wording.phrases import percent, where


def feature_matching_vanished(v: Mapping[str, Any]) -> tuple[str, str]:
    if v["limit"] == "early_peak":
        limit = f"below {percent(v['peak_fraction'])} of its early peak {v['early_peak']:.4f}"
    elif v["limit"] == "share_of_total":
        limit = f"under {percent(v['share_floor'])} of {tags.TRAIN_LOSS_G} ({v['share']:.2%})"
    else:
        limit = f"below {v['absolute_floor']:g} (no {tags.TRAIN_LOSS_G} was logged to compare it with)"
    evidence = (
        f"{tags.TRAIN_LOSS_FM} stayed {limit} for {v['patience']} consecutive epochs by {where(v['first'])}: it went "
        f"from {v['start_value']:.4f} at {where(v['start'])} to {v['last_value']:.4f} at {where(v['last'])}, so the "
        f"generator gets almost no signal from the discriminator's features."
    )
    suggestion = (
        "Feature matching carries signal only when the discriminator separates real from generated audio: fix the "
        "discriminator first (see DISCRIMINATOR_AT_CHANCE), or rerun with the feature-matching weight ×10 and check "
        f"that {tags.TRAIN_LOSS_FM} rises."
    )
    return evidence, suggestion


def gan_term_negligible(v: Mapping[str, Any]) -> tuple[str, str]:
    listed = ", ".join(
        f"{term['term']} {percent(term['share'])} at {where(term['at'])}"
        + ("" if term["share_now"] < v["threshold"] else f", {percent(term['share_now'])} now")
        for term in v["terms"]
    )
    if v.get("measure") == "balanced":
        evidence = (
            f"The GAN terms' median share of the loss balancer's gradient at the generator output over the last "
            f"{v['window']} measurements was under {percent(v['threshold'])} ({listed}), first at {where(v['first'])}, "
            f"while {v['largest_term']} had {percent(v['largest_share'])}: the balancer's weights give the adversarial "
            f"term almost no pull."
        )
        suggestion = (
            "Rerun with model.init_args.loss_balancer.weights.adversarial raised (EnCodec: 4 of 10.1, a 40% share) and "
            f"compare the validation metric; {tags.BALANCER_SHARE_PREFIX}<term> logs each term's share."
        )
        return evidence, suggestion
    evidence = (
        f"The GAN terms' median share of the generator-output gradient norm over the last {v['window']} "
        f"measurements was under {percent(v['threshold'])} ({listed}), first at {where(v['first'])}, while "
        f"{v['largest_term']} had {percent(v['largest_share'])}: the adversarial term barely moves the generator."
    )
    if v.get("reported_as_info", {}).get("reason") == "waveform_share":  # wording.REPORTED_AS_INFO
        suggestion = (
            "Nothing to change for this alone: judge the adversarial side by the discriminator's health "
            "(DISCRIMINATOR_AT_CHANCE, DISCRIMINATOR_FROZEN) and by val/mel_distance; a GAN term weighted 0 is "
            "reported as a warning."
        )
        return evidence, suggestion
    if v.get("reported_as_info", {}).get("reason") == "balanced":  # wording.REPORTED_AS_INFO
        suggestion = (
            "Nothing to change for this: under model.init_args.loss_balancer a term's pull is set by its weight, not "
            f"by the size of its own gradient; {tags.BALANCER_SHARE_PREFIX}<term> logs each term's share."
        )
        return evidence, suggestion
    suggestion = (
        "Rerun with the GAN term's weight raised until its share reaches a few percent (for example ×10), or with the "
        "dominant reconstruction term lowered, and compare the validation metric; GradientBalance logs the shares."
    )
    return evidence, suggestion


def balanced(note: Mapping[str, Any]) -> str:
    shares = ", ".join(
        f"{term} {percent(share)}" if share is not None else f"{term} not logged"
        for term, share in note["balanced_shares"].items()
    )
    return (
        f"This is the terms' own gradient, which the loss balancer rescales to its weight's share: of the balanced "
        f"gradient that reaches the generator they had {shares}, so the adversarial term does steer it."
    )


def waveform_share(note: Mapping[str, Any]) -> str:
    weights = ", ".join(
        f"{term} weight {weight:g}" if weight is not None else f"{term} weight not recorded"
        for term, weight in note["weights"].items()
    )
    return (
        f"In the {note['family']} family the generator output is a waveform whose gradient norm the log-mel loss "
        f"dominates (its gradient grows as 1 / mel in quiet bins), so a GAN term's share there is far below its pull "
        f"on the generator's weights ({weights}; none is 0)."
    )


def pesq_none_high(v: Mapping[str, Any]) -> tuple[str, str]:
    clip_fail = v["clip_fail_median"]
    clip_text = f", and a median {percent(clip_fail)} of clips had no PESQ" if clip_fail is not None else ""
    if v["sustained"]:
        evidence = (
            f"{tags.PESQ_NONE_RATE} was {v['rate']:.2f} at {where(v['first'])} ({percent(v['rate'])} of batches "
            f"dropped their metric-discriminator term), above the {percent(v['threshold'])} limit for {v['patience']} "
            f"consecutive logging intervals; its median over the run was {v['median']:.2f}{clip_text}."
        )
    else:
        evidence = (
            f"{tags.PESQ_NONE_RATE} peaked at {v['peak_rate']:.3f} at {where(v['peak'])} (median {v['median']:.3f}"
            f"{clip_text}); a few PESQ-None batches are normal (silent crops); in each, no clip taught the metric term "
            f"(under the drop_batch policy one failed clip skips the batch's update, under mask only a batch whose "
            f"every clip failed counts)."
        )
    suggestion = (
        "Check for silent or too-short crops: rerun with crops chosen away from silence or a longer crop and compare "
        "the rate; if it falls, the metric discriminator was starved by whole-batch drops, so score and skip per clip "
        "instead of dropping the batch."
    )
    return evidence, suggestion


def metric_d_not_learning(v: Mapping[str, Any]) -> tuple[str, str]:
    if v["measure"] == "correlation":
        limit = f"below a correlation of {v['threshold']:g}"
    else:
        limit = f"above a mean absolute error of {v['threshold']:g}"
    mae_text = f" and {tags.METRIC_D_MAE} was {v['last_mae']:.3f}" if v["last_mae"] is not None else ""
    evidence = (
        f"The metric discriminator stayed {limit} with the true normalised PESQ for {v['patience']} consecutive "
        f"logging intervals by {where(v['first'])}; the last value was {v['last_value']:.3f}{mae_text}, so its "
        f"adversarial term pushes the generator in a direction unrelated to PESQ."
    )
    suggestion = (
        f"Confirm its targets lie in [0, 1] and vary across clips (see {tags.PESQ_CLIP_FAIL_RATE}), then rerun with the "
        f"metric discriminator's learning rate ×2 or its dropout off; it should pass a correlation of 0.5 within a few "
        f"hundred steps."
    )
    return evidence, suggestion


WORDING = {
    "FEATURE_MATCHING_VANISHED": feature_matching_vanished,
    "GAN_TERM_NEGLIGIBLE": gan_term_negligible,
    "PESQ_NONE_HIGH": pesq_none_high,
    "METRIC_D_NOT_LEARNING": metric_d_not_learning,
}
INFO_NOTES = {"balanced": balanced, "waveform_share": waveform_share}
