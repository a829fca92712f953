"""The wording of the findings of `codecgan.diagnosis.rules.quality`."""

from __future__ import annotations

from typing import Any, Mapping

from codecgan.diagnosis import tags
from codecgan.diagnosis.wording.phrases import percent, where


def _dc_offset(v: Mapping[str, Any]) -> str:
    """The sentence naming a large DC offset (empty without one), appended to the level and SNR evidence."""
    if v["dc_offset"] is None:
        return ""
    return (
        f" The estimate's DC offset ({tags.VAL_DC_OFFSET}) was {v['dc_offset']:.2f} times the reference's RMS at "
        f"{where(v['dc_offset_at'])}: DC that DAC-style losses cannot see (the discriminators subtract each clip's "
        f"mean, the mel filters give 0 Hz no weight); a waveform L1 term (loss_weights.waveform) trains it away."
    )


def loss_metric_divergence(v: Mapping[str, Any]) -> tuple[str, str]:
    metric, loss, loss_change = v["metric"], v["loss"], v["loss_change"]
    direction = "fell" if loss_change < 0 else "changed"
    evidence = (
        f"{metric} {'fell' if v['mode'] == 'max' else 'rose'} {abs(v['best'] - v['worst']):.2f} from its best "
        f"{v['best']:.2f} at {where(v['best_at'])} to {v['worst']:.2f} at {where(v['worst_at'])} while {loss} "
        f"{direction} {percent(abs(loss_change))} over the same rounds; the fall first exceeded {v['threshold']:g} "
        f"(averaged over {v['patience']} rounds) at {where(v['first'])}."
    )
    suggestion = (
        f"Keep the best checkpoint (DivergenceMonitor(action='warn_and_checkpoint_best')) and rerun from it with the "
        f"adversarial weight halved, then with the generator learning rate halved: if {metric} holds, the generator "
        f"trades {metric} for a lower {loss}, so select checkpoints on {metric}, not on the loss."
    )
    return evidence, suggestion


def negative_snr(v: Mapping[str, Any]) -> tuple[str, str]:
    listed = ", ".join(f"{p['snr_db']:.2f} dB at {where(p['at'])}" for p in v["episode"])
    evidence = (
        f"{tags.VAL_SNR} was below {v['threshold_db']:g} dB in {v['patience']} consecutive validation rounds "
        f"({listed}); the last round gave {v['last_snr_db']:.2f} dB, so the reconstruction error carries more energy "
        f"than the reference itself."
    )
    if v["si_sdr_db"] is not None:
        evidence = evidence[:-1] + f", while {tags.VAL_SI_SDR} was {v['si_sdr_db']:.2f} dB."
    evidence += _dc_offset(v)
    suggestion = (
        f"Compare {tags.VAL_SI_SDR} with {tags.VAL_SNR}: if SI-SDR is much higher the output is mis-scaled or delayed "
        f"(see {tags.VAL_AMPLITUDE_RATIO} and the generator's output alignment); otherwise rerun with the "
        f"reconstruction (mel/waveform) weight doubled or the adversarial weights halved and check that SNR turns "
        f"positive."
    )
    return evidence, suggestion


def amplitude_unstable(v: Mapping[str, Any]) -> tuple[str, str]:
    tolerance = v["tolerance_db"]
    listed = " and ".join(f"{p['ratio']:.3f} ({p['level_db']:+.2f} dB) at {where(p['at'])}" for p in v["episode"])
    low, high = v["min_level_db"], v["max_level_db"]
    evidence = (
        f"{tags.VAL_AMPLITUDE_RATIO} (RMS of estimate / RMS of reference) was {listed}, outside ±{tolerance:g} dB in "
        f"{v['patience']} consecutive rounds; over the run it spanned {high - low:.2f} dB ({low:+.2f} to "
        f"{high:+.2f} dB)."
    ) + _dc_offset(v)
    suggestion = (
        f"Watch {tags.VAL_PEAK_RATIO} and {tags.VAL_CLIPPED_FRACTION} next to it, then rerun with a waveform L1 term "
        f"(weight about 1) or with the discriminators' peak normalisation changed, and check that the ratio settles "
        f"within ±{tolerance:g} dB."
    )
    return evidence, suggestion


def length_mismatch(v: Mapping[str, Any]) -> tuple[str, str]:
    evidence = (
        f"{tags.LENGTH_MISMATCH} counted {v['clips']:.0f} validation clips at {where(v['first'])} whose estimate "
        f"length differed from the reference or fell short of the true length; {v['bad_rounds']} of {v['rounds']} "
        f"rounds had such clips."
    )
    suggestion = (
        "Run the generator on a clip whose length is not a multiple of its hop size and compare shapes; fix the padding "
        "or ISTFT length so metrics are not computed on trimmed or zero-padded tails."
    )
    return evidence, suggestion


def eval_nondeterministic(v: Mapping[str, Any]) -> tuple[str, str]:
    share = v["changed_fraction"]
    share_text = f" ({percent(share)} of those seen twice)" if share is not None else ""
    evidence = (
        f"{v['items']:.0f} validation items{share_text} had different input audio at {where(v['first'])} than in the "
        f"previous validation round, so validation scores move with the crops rather than with the model; "
        f"{v['changed_rounds']} of {v['rounds']} compared rounds changed."
    )
    suggestion = (
        "Use deterministic validation crops (CroppedDataset mode='center' or 'start' for the validation set) and check "
        f"that {tags.EVAL_INPUT_CHANGED} stays 0."
    )
    return evidence, suggestion


def improving_codec(note: Mapping[str, Any]) -> str:
    """Why a negative SNR is info: the codec's SNR holds on its trend while its mel distance falls."""
    return (
        f"It is reported as info because the codec is improving: over its {note['rounds']} rounds {tags.VAL_SNR} "
        f"moved {note['snr_change_db']:+.2f} dB on its robust trend ({note['snr_start_db']:.2f} to "
        f"{note['snr_end_db']:.2f} dB) while {tags.VAL_LOSS_MEL} fell from {note['mel_start']:.3f} to "
        f"{note['mel_end']:.3f}, with no level warning (GAN codecs trade waveform SNR for perceptual quality; "
        f"low-bitrate ones sit below 0 dB). It becomes a warning if the SNR falls by more than "
        f"{note['fall_threshold_db']:g} dB, the mel distance stops falling or the level becomes a warning."
    )


def mel_warm_up(note: Mapping[str, Any]) -> str:
    """Why a quiet output is info: the validation mel loss is still falling fast (a log-mel generator's warm-up)."""
    before, last = note["mel_before"], note["mel_last"]
    return (
        f"It is reported as info because {note.get('mel_tag', tags.VAL_LOSS_MEL)} is still falling ({before:.2f} at "
        f"{where(note['before_at'])}, {last:.2f} at {where(note['last_at'])}, {percent((before - last) / before)} "
        f"lower): a generator trained on a log-mel loss is quiet until it can place the harmonics (the log-mel L1 of a "
        f"smeared estimate is lowest below the reference's level, and DAC's discriminators normalise the level away). "
        f"It becomes a warning if the loss falls by less than {percent(note['min_fall'])} over {note['rounds']} "
        f"rounds while the output is still quiet."
    )


def pesq_warm_up(note: Mapping[str, Any]) -> str:
    """Why a quiet enhancer is info: validation PESQ is still rising fast (PESQ ignores level, so only the spectral
    losses pull the level up)."""
    before, last = note["pesq_before"], note["pesq_last"]
    return (
        f"It is reported as info because {tags.VAL_PESQ} is still rising ({before:.2f} at {where(note['before_at'])}, "
        f"{last:.2f} at {where(note['last_at'])}): PESQ ignores level, so the metric discriminator cannot teach gain "
        f"and an enhancer's output stays below the clean reference's level until its spectral losses pull it up. It "
        f"becomes a warning if PESQ rises by less than {note['min_gain']:g} over {note['rounds']} rounds while the "
        f"output is still quiet."
    )


def level_untrained(note: Mapping[str, Any]) -> str:
    """Why a wrong level is info when nothing trains it: the generator's only loss is the metric discriminator's."""
    return (
        f"It is reported as info because the generator's only loss term is {note['generator_terms'][0]}, against a "
        "metric discriminator that predicts PESQ, and PESQ ignores level: nothing in the recipe trains the output's "
        "level (MetricGAN+ by design: SpeechBrain's mse_weight is 0). Match the level at inference, or give the "
        "generator a spectral term, if the level matters downstream."
    )


WORDING = {
    "LOSS_METRIC_DIVERGENCE": loss_metric_divergence,
    "NEGATIVE_SNR": negative_snr,
    "AMPLITUDE_UNSTABLE": amplitude_unstable,
    "LENGTH_MISMATCH": length_mismatch,
    "EVAL_NONDETERMINISTIC": eval_nondeterministic,
}
INFO_NOTES = {
    "improving_codec": improving_codec,
    "mel_warm_up": mel_warm_up,
    "pesq_warm_up": pesq_warm_up,
    "level_untrained": level_untrained,
}
