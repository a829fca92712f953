"""Rules read per model family: a codec's divergence on its mel distance, a codec's negative SNR that improves, and
non-finite steps that are isolated or repeated."""

from __future__ import annotations

import math

from codecgan.diagnosis.registry import RULES
from tests.diagnosis.test_rules import FALLING, history

MEL_RISING = [3.0, 2.6, 2.3, 2.2] + [2.2 + 0.05 * k for k in range(1, 17)]  # best at epoch 3, then up for 16 epochs
MEL_FALLING = [4.0 * 0.93**epoch for epoch in range(6)]


def test_a_codec_whose_mel_distance_rises_while_its_training_loss_falls_diverges() -> None:
    finding = RULES["LOSS_METRIC_DIVERGENCE"](
        history(val__loss_mel=MEL_RISING, train__loss_g=[0.97**epoch for epoch in range(20)])
    )
    assert finding is not None and finding.severity == "critical"
    # The default drop for the mel distance is 5% of its best (0.11): averaged over two rounds it is passed at epoch 6.
    assert finding.first_epoch == 6
    assert finding.evidence.startswith("val/loss_mel rose 0.80 from its best 2.20 at epoch 3")


def test_a_codec_is_judged_by_its_mel_distance_not_by_its_snr() -> None:
    """A GAN codec whose SNR falls while its mel distance keeps falling is not diverging."""
    series = dict(val__loss_mel=MEL_FALLING, val__snr_db=[3.0, 2.0, 1.5, 1.0, 0.5, 0.2], train__loss_g=FALLING[:6])
    assert RULES["LOSS_METRIC_DIVERGENCE"](history(**series)) is None
    # The enhancer keeps PESQ first.
    series["val__pesq"] = [2.0, 2.3, 2.5, 2.4, 2.3, 2.2]
    assert "val/pesq fell" in RULES["LOSS_METRIC_DIVERGENCE"](history(**series)).evidence


def test_a_codecs_negative_snr_that_rises_while_its_mel_distance_falls_is_info() -> None:
    improving = dict(
        val__snr_db=[-6.0, -4.5, -3.8, -3.1], val__loss_mel=MEL_FALLING[:4], val__amplitude_ratio=[1.0] * 4
    )
    finding = RULES["NEGATIVE_SNR"](history(**improving))
    assert finding.severity == "info" and "moved +2.50 dB on its robust trend (-6.00 to -3.10 dB)" in finding.evidence


def test_a_codecs_flat_negative_snr_in_its_quiet_warm_up_is_info() -> None:
    """The zoo's healthy tiny codec: SNR hovering at -1 to -2 dB for 10 rounds, the mel distance halving, the output
    quiet while it warms up (AMPLITUDE_UNSTABLE itself info)."""
    snr = [-1.75, -1.06, -0.99, -1.16, -1.59, -0.96, -1.06, -0.92, -1.43, -1.96]
    mel = [4.04, 3.09, 2.85, 2.68, 2.35, 2.12, 1.97, 2.01, 1.82, 1.83]
    level = [0.6, 0.46, 0.46, 0.5, 0.6, 0.5, 0.54, 0.49, 0.61, 0.71]
    finding = RULES["NEGATIVE_SNR"](history(val__snr_db=snr, val__loss_mel=mel, val__amplitude_ratio=level))
    assert finding.severity == "info", finding.evidence


def test_a_negative_snr_is_a_warning_when_it_falls_or_comes_with_a_level_problem() -> None:
    falling = dict(val__snr_db=[-2.4, -2.9, -3.3, -3.7], val__loss_mel=MEL_FALLING[:4], val__amplitude_ratio=[1.0] * 4)
    assert RULES["NEGATIVE_SNR"](history(**falling)).severity == "warning"
    loud = dict(val__snr_db=[-6.0, -4.5, -3.8, -3.1], val__loss_mel=MEL_FALLING[:4], val__amplitude_ratio=[1.3] * 4)
    assert RULES["NEGATIVE_SNR"](history(**loud)).severity == "warning"
    no_mel = dict(val__snr_db=[-6.0, -4.5, -3.8, -3.1])  # an enhancer, or nothing says the codec improves
    assert RULES["NEGATIVE_SNR"](history(**no_mel)).severity == "warning"


def test_isolated_skipped_steps_are_a_warning_and_repeated_ones_critical() -> None:
    once = RULES["NONFINITE_LOSS"](history(diag__nonfinite_loss_steps=[0, 1, 0, 0, 0]))
    assert once.severity == "warning" and "went on" in once.evidence
    again = RULES["NONFINITE_LOSS"](history(diag__nonfinite_loss_steps=[0, 1, 0, 2, 1]))
    assert again.severity == "critical"
    stopped = RULES["NONFINITE_LOSS"](history(train__loss_g=[1.0, math.nan], diag__nonfinite_loss_steps=[0, 1]))
    assert stopped.severity == "critical"


def test_gan_term_negligible_quotes_the_share_it_flagged_and_the_share_now() -> None:
    shares = [0.004, 0.004, 0.004, 0.004, 0.05, 0.05, 0.05, 0.05, 0.05]
    finding = RULES["GAN_TERM_NEGLIGIBLE"](
        history(diag__grad_share__loss_adv=shares, diag__grad_share__loss_mel=[0.9] * 9)
    )
    assert "loss_adv 0.4% at epoch 2" in finding.evidence and "5.0% now" in finding.evidence


def test_pesq_none_info_says_what_a_dropped_batch_means_under_each_policy() -> None:
    finding = RULES["PESQ_NONE_HIGH"](history(diag__pesq_none_rate=[0.01, 0.05, 0.01, 0.02]))
    assert finding.severity == "info"
    assert "under mask only a batch whose every clip failed counts" in finding.evidence
    assert "drops the metric discriminator's update for the whole batch" not in finding.evidence


def test_a_vocoders_negative_snr_is_no_finding_and_its_quiet_warm_up_reads_its_mel_distance() -> None:
    """A vocoder (val/mel_distance logged) hears no phase: its SNR sits below 0 dB however well it trains. Its early
    quiet output is a warm-up while its mel distance falls, as a codec's."""
    snr = [-3.0, -3.5, -4.0, -4.5]
    mel = [2.0, 1.6, 1.3, 1.1, 1.0]
    series = dict(val__snr_db=snr + [-4.6], val__mel_distance=mel, val__amplitude_ratio=[0.3, 0.35, 0.4, 0.45, 0.5])
    assert RULES["NEGATIVE_SNR"](history(**series)) is None
    level = RULES["AMPLITUDE_UNSTABLE"](history(**series))
    assert level.severity == "info" and "val/mel_distance is still falling (1.60 at" in level.evidence
    assert RULES["NEGATIVE_SNR"](history(val__snr_db=snr)).severity == "warning"  # without it, the rule is as before


# Shares at the waveform as the healthy tiny Vocos vocoder logs them (every 50 steps from step 0, steps 0-200).
VOCODER_ADV = [9.4e-11, 1.0e-06, 1.1e-07, 1.7e-03, 2.0e-07]
VOCODER_WEIGHTS = {
    "loss_mel": {"key": "model.init_args.loss_weights.mel", "weight": 45.0, "published": 45.0},
    "loss_adv": {"key": "model.init_args.loss_weights.adversarial", "weight": 1.0, "published": 1.0},
}


def test_a_vocoders_small_waveform_gan_share_is_info_and_a_zero_weight_a_warning() -> None:
    series = dict(diag__grad_share__loss_adv=VOCODER_ADV, diag__grad_share__loss_mel=[1.0] * 5)
    rule = RULES["GAN_TERM_NEGLIGIBLE"]
    healthy = rule(history(**series), family="vocoder", term_weights=VOCODER_WEIGHTS)
    assert healthy.severity == "info" and "grows as 1 / mel in quiet bins" in healthy.evidence
    assert "loss_adv weight 1; none is 0" in healthy.evidence
    off = {**VOCODER_WEIGHTS, "loss_adv": {**VOCODER_WEIGHTS["loss_adv"], "weight": 0.0}}
    zero = dict(diag__grad_share__loss_adv=[0.0] * 5, diag__grad_share__loss_mel=[1.0] * 5)
    assert rule(history(**zero), family="vocoder", term_weights=off).severity == "warning"
    # The codec's raw share stays a warning; so does a vocoder run that recorded no family.
    assert rule(history(**series), family="codec", term_weights=VOCODER_WEIGHTS).severity == "warning"
    assert rule(history(**series)).severity == "warning"
