"""Each rule on scripted metric trajectories: the failure it names, and the near misses it must not name."""

from __future__ import annotations

import math

import pytest

from codecgan.diagnosis import MetricHistory
from codecgan.diagnosis.registry import RULES, run_rules

REQUIRED_CODES = {
    "LOSS_METRIC_DIVERGENCE",
    "PESQ_NONE_HIGH",
    "METRIC_D_NOT_LEARNING",
    "DISCRIMINATOR_AT_CHANCE",
    "DISCRIMINATOR_FROZEN",
    "DISCRIMINATOR_OVERPOWERING",
    "FEATURE_MATCHING_VANISHED",
    "NEGATIVE_SNR",
    "AMPLITUDE_UNSTABLE",
    "LENGTH_MISMATCH",
    "EVAL_NONDETERMINISTIC",
    "RANK_DIVERGENCE",
    "NONFINITE_LOSS",
    "GAN_TERM_NEGLIGIBLE",
    "CODEBOOK_COLLAPSE",
}


def history(**series: list[float]) -> MetricHistory:
    """One point per epoch (step = 100 per epoch); keyword names use '__' for '/' (val__pesq -> val/pesq)."""
    built = MetricHistory()
    for name, values in series.items():
        for epoch, value in enumerate(values):
            if value is not None:
                built.add(name.replace("__", "/"), value, step=100 * (epoch + 1), epoch=epoch)
    return built


FALLING = [1.0 * 0.95**e for e in range(12)]

CASES = [
    # (code, series, expected first epoch, or None when the rule must say nothing above info)
    ("LOSS_METRIC_DIVERGENCE", dict(val__pesq=[2.0, 2.3, 2.5, 2.4, 2.3, 2.2, 2.1, 2.0], train__loss_g=FALLING[:8]), 4),
    ("LOSS_METRIC_DIVERGENCE", dict(val__pesq=[2.0, 2.3, 2.5, 2.4, 2.3, 2.2, 2.1, 2.0], train__loss_g=[1.0] * 8), None),
    ("LOSS_METRIC_DIVERGENCE", dict(val__pesq=[2.0, 2.3, 2.5, 2.45, 2.5, 2.46, 2.49], train__loss_g=FALLING[:7]), None),
    ("LOSS_METRIC_DIVERGENCE", dict(val__snr_db=[3.0, 5.0, 4.2, 3.9, 3.5], train__loss_g=FALLING[:5]), 3),
    ("PESQ_NONE_HIGH", dict(diag__pesq_none_rate=[0.05, 0.2, 0.25, 0.3]), 2),
    ("PESQ_NONE_HIGH", dict(diag__pesq_none_rate=[0.01, 0.15, 0.01, 0.02]), None),
    ("METRIC_D_NOT_LEARNING", dict(diag__metric_d_corr=[0.0, 0.05, 0.1, 0.1, 0.12, 0.1]), 5),
    ("METRIC_D_NOT_LEARNING", dict(diag__metric_d_corr=[0.0, 0.1, 0.3, 0.5, 0.6, 0.7]), None),
    ("METRIC_D_NOT_LEARNING", dict(diag__metric_d_mae=[0.3, 0.3, 0.25, 0.2, 0.2, 0.2]), 5),
    ("DISCRIMINATOR_AT_CHANCE", dict(train__loss_d=[1.0, 0.99, 0.995, 0.99], diag__d_loss_chance=[1.0] * 4), 2),
    ("DISCRIMINATOR_AT_CHANCE", dict(train__loss_d=[1.0, 0.9, 0.7, 0.6], diag__d_loss_chance=[1.0] * 4), None),
    ("DISCRIMINATOR_AT_CHANCE", dict(diag__d_loss_to_chance=[1.0, 1.0, 0.99]), 2),
    ("FEATURE_MATCHING_VANISHED", dict(train__loss_fm=[2.0, 1.5, 0.1, 0.05, 0.04]), 4),
    ("FEATURE_MATCHING_VANISHED", dict(train__loss_fm=[0.2, 0.2, 0.2, 0.2], train__loss_g=[30.0] * 4), 2),
    ("FEATURE_MATCHING_VANISHED", dict(train__loss_fm=[0.8, 1.0, 1.2, 1.4], train__loss_g=[20.0] * 4), None),
    ("NEGATIVE_SNR", dict(val__snr_db=[-1.0, 2.0, -0.5, -0.2]), 3),
    ("NEGATIVE_SNR", dict(val__snr_db=[-1.0, 2.0, -0.5, 0.1]), None),
    ("AMPLITUDE_UNSTABLE", dict(val__amplitude_ratio=[1.0, 0.8, 1.2, 1.0]), 2),
    ("AMPLITUDE_UNSTABLE", dict(val__amplitude_ratio=[1.0, 0.95, 1.05, 1.1]), None),
    ("LENGTH_MISMATCH", dict(diag__length_mismatch=[0, 0, 4]), 2),
    ("LENGTH_MISMATCH", dict(diag__length_mismatch=[0, 0, 0]), None),
    ("EVAL_NONDETERMINISTIC", dict(diag__eval_input_changed=[0, 16, 16]), 1),
    ("EVAL_NONDETERMINISTIC", dict(diag__eval_input_changed=[0, 0]), None),
    (
        "RANK_DIVERGENCE",
        {"diag/rank_param_spread/generator": [0.0, 0.0, 3e-4], "diag/rank_param_spread/discriminator": [0.0] * 3},
        2,
    ),
    ("RANK_DIVERGENCE", {"diag/rank_param_spread/generator": [0.0, 1e-9, 0.0]}, None),
    ("NONFINITE_LOSS", dict(train__loss_g=[1.0, 0.9, math.nan, math.nan]), 2),
    ("NONFINITE_LOSS", dict(diag__nonfinite_loss_steps=[0, 0, 0, 3]), 3),
    ("NONFINITE_LOSS", dict(train__loss_g=[1.0, 0.9], diag__nonfinite_loss_steps=[0, 0]), None),
    ("GAN_TERM_NEGLIGIBLE", {"diag/grad_share/loss_adv": [0.004] * 4, "diag/grad_share/loss_mag": [0.9] * 4}, 2),
    ("GAN_TERM_NEGLIGIBLE", {"diag/grad_share/loss_adv": [0.05] * 4, "diag/grad_share/loss_mag": [0.9] * 4}, None),
    ("GAN_TERM_NEGLIGIBLE", {"diag/grad_share/loss_mel": [0.001] * 4}, None),
    (
        "CODEBOOK_COLLAPSE",
        {"diag/codebook_entropy_fraction/0": [0.9, 0.4, 0.3], "diag/codebook_entropy_fraction/1": [0.9] * 3},
        2,
    ),
    ("CODEBOOK_COLLAPSE", {"diag/codebook_entropy_fraction/0": [0.9, 0.4, 0.6]}, None),
]


@pytest.mark.parametrize(("code", "series", "first_epoch"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_rule_on_scripted_trajectory(code: str, series: dict, first_epoch: int | None) -> None:
    finding = RULES[code](history(**series))
    if first_epoch is None:
        assert finding is None or finding.severity == "info", finding
        return
    assert finding is not None and finding.code == code
    assert finding.first_epoch == first_epoch
    assert finding.first_step == 100 * (first_epoch + 1)
    assert finding.evidence.endswith(".") and any(ch.isdigit() for ch in finding.evidence)
    assert finding.suggestion.endswith(".")


def test_every_required_code_has_a_rule() -> None:
    assert REQUIRED_CODES <= set(RULES)


def test_an_empty_history_finds_nothing() -> None:
    assert run_rules(MetricHistory()) == []


def test_pesq_none_between_two_and_ten_percent_is_only_info() -> None:
    finding = RULES["PESQ_NONE_HIGH"](history(diag__pesq_none_rate=[0.01, 0.05, 0.04]))
    assert finding is not None and finding.severity == "info"


def test_codebook_collapse_below_a_fifth_is_critical() -> None:
    finding = RULES["CODEBOOK_COLLAPSE"](history(**{"diag/codebook_entropy_fraction/0": [0.1, 0.1]}))
    assert finding is not None and finding.severity == "critical"


def test_divergence_in_min_mode_watches_a_rising_metric() -> None:
    built = history(val__loss_mel=[1.0, 0.8, 0.7, 0.8, 0.9, 1.0], train__loss_g=FALLING[:6])
    finding = RULES["LOSS_METRIC_DIVERGENCE"](built, metric="val/loss_mel", mode="min", min_drop=0.1)
    assert finding is not None and finding.first_epoch == 4
    assert "rose 0.30 from its best 0.70" in finding.evidence


QUIET = [0.4, 0.5, 0.55, 0.6, 0.65, 0.7]  # -8 to -3 dB: a log-mel-trained codec warming up
MEL_FALLING = [4.0, 3.4, 3.0, 2.6, 2.3, 2.1]  # 30% lower than three rounds before
MEL_LEVELLED = [4.0, 3.0, 2.2, 2.17, 2.14, 2.12]  # 3.6% lower than three rounds before
# The tiny MP-SENet's first 300 steps (experiments/enhance_mpsenet_tiny.yaml): level -6.4 to -2.9 dB, PESQ +0.48 MOS
# over the last three rounds.
ENHANCER_QUIET = [0.479, 0.692, 0.838, 0.734, 0.724, 0.719]
PESQ_RISING = [1.069, 1.125, 1.253, 1.431, 1.606, 1.728]
PESQ_LEVELLED = [1.069, 1.125, 1.253, 1.30, 1.32, 1.34]  # +0.087 MOS over the last three rounds


def test_a_quiet_codec_whose_mel_loss_still_falls_is_warming_up() -> None:
    finding = RULES["AMPLITUDE_UNSTABLE"](history(val__amplitude_ratio=QUIET, val__loss_mel=MEL_FALLING))
    assert finding is not None and finding.severity == "info"
    assert finding.first_epoch == 1
    assert "val/loss_mel is still falling (3.00 at epoch 2 (step 300), 2.10 at epoch 5 (step 600), 30% lower)" in (
        finding.evidence
    )


def test_a_quiet_enhancer_whose_pesq_still_rises_is_warming_up() -> None:
    finding = RULES["AMPLITUDE_UNSTABLE"](history(val__amplitude_ratio=ENHANCER_QUIET, val__pesq=PESQ_RISING))
    assert finding is not None and finding.severity == "info"
    assert "val/pesq is still rising (1.25 at epoch 2 (step 300), 1.73 at epoch 5 (step 600))" in finding.evidence


def test_a_wrong_level_that_nothing_trains_is_info() -> None:
    # MetricGAN+'s recipe: the generator's only term is the metric discriminator's, and PESQ ignores level.
    losses = dict(train__loss_g=[0.3] * 6, train__loss_adv=[0.3] * 6, train__loss_d=[1.0] * 6)
    finding = RULES["AMPLITUDE_UNSTABLE"](
        history(val__amplitude_ratio=[0.39] * 6, **losses, train__loss_d_noisy=[0.1] * 6)
    )
    assert finding is not None and finding.severity == "info"
    assert "the generator's only loss term is train/loss_adv" in finding.evidence
    with_spectral_term = RULES["AMPLITUDE_UNSTABLE"](
        history(val__amplitude_ratio=[0.39] * 6, **losses, train__loss_magnitude=[0.1] * 6)
    )
    assert with_spectral_term is not None and with_spectral_term.severity == "warning"


@pytest.mark.parametrize(
    "series",
    [
        dict(val__amplitude_ratio=ENHANCER_QUIET, val__pesq=PESQ_LEVELLED),  # PESQ has levelled off
        dict(val__amplitude_ratio=[1.5, 1.6, 1.7, 1.6, 1.5, 1.6], val__pesq=PESQ_RISING),  # too loud: no excuse
        dict(val__amplitude_ratio=QUIET, val__loss_mel=MEL_LEVELLED),  # the loss has levelled off: a real deficit
        dict(val__amplitude_ratio=QUIET),  # no mel loss logged (the enhancers): nothing says it is a warm-up
        dict(val__amplitude_ratio=[0.8, 0.9, 1.0, 1.1, 1.2, 1.3], val__loss_mel=MEL_FALLING),  # too loud: no excuse
        dict(val__amplitude_ratio=[0.7, 0.9, 0.6, 0.8, 1.3, 0.8], val__loss_mel=MEL_FALLING),  # crossed the reference
        dict(val__amplitude_ratio=QUIET, val__loss_mel=MEL_FALLING, val__dc_offset=[0.1] * 5 + [0.6]),  # DC
    ],
    ids=["pesq-levelled", "pesq-loud", "mel-levelled", "no-mel", "loud", "crossing", "dc-offset"],
)
def test_a_level_outside_tolerance_stays_a_warning_unless_it_is_a_quiet_warm_up(series: dict) -> None:
    finding = RULES["AMPLITUDE_UNSTABLE"](history(**series))
    assert finding is not None and finding.severity == "warning", finding
