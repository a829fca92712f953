"""Findings about a condition that held and then cleared are info; a frozen discriminator is named as frozen, and one
that comes down from its initialisation is not at chance. Found by the failure zoo (bench/zoo) on live tiny runs."""

from __future__ import annotations

import pytest

from codecgan.diagnosis import MetricHistory
from codecgan.diagnosis.registry import RULES


def history(**series: list[float]) -> MetricHistory:
    """One point per epoch (step = 100 per epoch); keyword names use '__' for '/'."""
    built = MetricHistory()
    for name, values in series.items():
        for epoch, value in enumerate(values):
            built.add(name.replace("__", "/"), value, step=100 * (epoch + 1), epoch=epoch)
    return built


SHARE = "diag__grad_share__loss_adv"
ENTROPY = "diag__codebook_entropy_fraction__0"

# (code, the condition holding for a while and then clearing, the same condition still holding at the end)
TRANSIENTS = [
    ("NEGATIVE_SNR", dict(val__snr_db=[-3.0, -1.0, 0.5, 1.5]), dict(val__snr_db=[-3.0, -1.0, -0.5, -0.2])),
    (
        "AMPLITUDE_UNSTABLE",
        dict(val__amplitude_ratio=[0.2, 0.7, 0.95, 1.02]),  # a warm-up: 14 dB low, then within 1 dB
        dict(val__amplitude_ratio=[0.2, 0.7, 0.8, 0.8]),
    ),
    (
        "DISCRIMINATOR_AT_CHANCE",
        dict(train__loss_d=[2.0, 2.0, 1.99, 1.2, 1.1], diag__d_loss_chance=[2.0] * 5),
        dict(train__loss_d=[2.0, 2.0, 1.99, 1.99, 1.98], diag__d_loss_chance=[2.0] * 5),
    ),
    (
        "FEATURE_MATCHING_VANISHED",
        dict(train__loss_fm=[0.2, 0.2, 0.2, 2.0, 3.0], train__loss_g=[30.0] * 5),
        dict(train__loss_fm=[0.2, 0.2, 0.2, 0.2, 0.2], train__loss_g=[30.0] * 5),
    ),
    (
        "GAN_TERM_NEGLIGIBLE",
        {SHARE: [0.001, 0.005, 0.008, 0.03, 0.04, 0.05], "diag__grad_share__loss_mel": [0.9] * 6},
        {SHARE: [0.001, 0.005, 0.008, 0.006, 0.004, 0.005], "diag__grad_share__loss_mel": [0.9] * 6},
    ),
    ("PESQ_NONE_HIGH", dict(diag__pesq_none_rate=[0.3, 0.3, 0.02, 0.0]), dict(diag__pesq_none_rate=[0.3, 0.3, 0.3])),
    (
        "METRIC_D_NOT_LEARNING",
        dict(diag__metric_d_corr=[0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.6, 0.7]),
        dict(diag__metric_d_corr=[0.1] * 8),
    ),
    ("CODEBOOK_COLLAPSE", {ENTROPY: [0.3, 0.3, 0.6, 0.7]}, {ENTROPY: [0.3, 0.3, 0.3, 0.35]}),
]


@pytest.mark.parametrize(("code", "cleared", "holding"), TRANSIENTS, ids=[case[0] for case in TRANSIENTS])
def test_a_condition_that_cleared_is_info_and_one_that_holds_is_not(code: str, cleared: dict, holding: dict) -> None:
    past = RULES[code](history(**cleared))
    now = RULES[code](history(**holding))
    assert past is not None and past.severity == "info", past
    assert "so it is reported as info." in past.evidence
    assert now is not None and now.severity in ("warning", "critical"), now
    assert (past.first_step, past.first_epoch) == (now.first_step, now.first_epoch)  # where it first held


@pytest.mark.parametrize(
    ("fractions", "severity"),
    [
        ([0.7, 0.35, 0.31, 0.39, 0.47], "info"),  # the healthy zoo codec's quantizer 0: a dip, then rising
        ([0.7, 0.35, 0.31, 0.33, 0.35], "warning"),  # rising, but by under 0.1 of the codebook's entropy
        ([0.7, 0.31, 0.45, 0.41, 0.44], "warning"),  # not rising in each of the last two windows
        ([0.7, 0.1, 0.12, 0.15], "critical"),  # under a fifth of the entropy, rising too little
    ],
)
def test_a_codebook_collapse_that_is_reversing_is_info(fractions: list[float], severity: str) -> None:
    finding = RULES["CODEBOOK_COLLAPSE"](history(**{ENTROPY: fractions}))
    assert finding is not None and finding.severity == severity, finding
    if severity == "info":
        assert finding.evidence.endswith(
            "Its usage is recovering, rising in each of the last 2 windows and by 0.1 of the codebook's entropy or "
            "more since its lowest point (quantizer 0 from 31% at epoch 2 (step 300) to 47% at epoch 4 (step 500)), "
            "so it is reported as info while it keeps rising."
        )
        assert finding.to_dict()["evidence_values"]["reported_as_info"]["quantizers"][0]["low"] == 0.31


def test_a_condition_that_cleared_and_came_back_is_not_info() -> None:
    finding = RULES["NEGATIVE_SNR"](history(val__snr_db=[-2.0, -1.0, 1.0, 2.0, -0.5, -0.7]))
    assert finding is not None and finding.severity == "warning" and finding.first_epoch == 1


def test_a_frozen_discriminator_is_frozen_not_at_chance() -> None:
    # Measured on the zoo's frozen_discriminator run: a randomly initialised DAC discriminator that never steps outputs
    # about 0.023 for real and generated audio alike, a least-squares loss 1.93 times the best constant's (2.5 for five
    # sub-discriminators), and its weights do not move.
    margins = [-0.0013, 0.0004, 0.0, 0.0001, 0.0]
    frozen = dict(train__loss_d=[4.826] * 5, diag__d_loss_chance=[2.5] * 5, diag__d_margin=margins)
    by_loss = RULES["DISCRIMINATOR_AT_CHANCE"](history(**frozen))  # without diag/d_update_ratio the loss decides
    assert by_loss is not None and by_loss.severity == "warning" and by_loss.first_epoch == 2
    assert "193.0%" in by_loss.evidence and "0.0000" in by_loss.evidence
    measured = history(**frozen, diag__d_update_ratio=[0.0] * 5)
    assert RULES["DISCRIMINATOR_AT_CHANCE"](measured) is None
    finding = RULES["DISCRIMINATOR_FROZEN"](measured)
    assert finding is not None and finding.severity == "warning" and finding.first_epoch == 2


def test_a_discriminator_that_learns_its_bias_first_and_then_separates_is_not_at_chance() -> None:
    # The healthy zoo control: from above chance (a random initialisation is worse than the best constant) the loss
    # falls below it in three short epochs, while the margin is still ~0 for two.
    margins = [-0.002, 0.0, 0.045, 0.09, 0.12]
    learning = dict(train__loss_d=[4.4, 3.4, 2.6, 2.3, 2.2], diag__d_loss_chance=[2.5] * 5, diag__d_margin=margins)
    assert RULES["DISCRIMINATOR_AT_CHANCE"](history(**learning)) is None
