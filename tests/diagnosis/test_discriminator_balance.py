"""The discriminator-balance rules (at chance, frozen, overpowering) on scripted metric trajectories, with the near
misses and healthy runs they must not name."""

from __future__ import annotations

import pytest

from codecgan.diagnosis.registry import RULES, run_rules
from tests.diagnosis.test_rules import history

AT_CHANCE, FROZEN, OVERPOWERING = "DISCRIMINATOR_AT_CHANCE", "DISCRIMINATOR_FROZEN", "DISCRIMINATOR_OVERPOWERING"
MOVING = [1e-3] * 6  # diag/d_update_ratio of a discriminator that steps with a learning rate of about 1e-4

# The metric discriminator of a small enhancer: chance about 0.4 (targets near 0.2), loss near 0, as CMGAN reports.
ENHANCER_OVERPOWERED = dict(
    val__pesq=[2.0, 2.3, 2.5, 2.4, 2.3, 2.2],
    train__loss_d=[0.05, 0.03, 0.02, 0.01, 0.01, 0.01],
    diag__d_loss_chance=[0.4] * 6,
    train__loss_adv=[0.020, 0.020, 0.021, 0.025, 0.030, 0.035],
)
# A codec (five least-squares sub-discriminators, chance 2.5) whose mel distance turns up as D wins outright.
CODEC_OVERPOWERED = dict(
    val__loss_mel=[1.5, 1.3, 1.2, 1.25, 1.32, 1.4],
    val__snr_db=[1.0, 2.0, 3.0, 3.5, 4.0, 4.5],  # ignored: a codec is judged on its mel distance
    train__loss_d=[0.5, 0.3, 0.125, 0.1, 0.08, 0.06],
    diag__d_loss_chance=[2.5] * 6,
    train__loss_adv=[2.0, 2.2, 2.5, 3.0, 3.5, 4.0],
)

# A discriminator that steps (its weights move) but stays at its best constant's loss.
STUCK = dict(train__loss_d=[2.5, 2.49, 2.5, 2.48, 2.5], diag__d_loss_chance=[2.5] * 5, diag__d_update_ratio=MOVING[:5])

CASES = [
    # (code, series, expected first epoch, or None when the rule must say nothing above info)
    (AT_CHANCE, STUCK, 2),
    # The LSGAN equilibrium and a converged run: D at half its best constant's loss, real and generated outputs equal.
    (AT_CHANCE, dict(train__loss_d=[1.25] * 6, diag__d_loss_chance=[2.5] * 6, diag__d_margin=[0.0] * 6), None),
    # From a random initialisation (above chance) down below it: learning, however slowly its margin opens.
    (AT_CHANCE, dict(train__loss_d=[4.4, 3.4, 2.6, 2.3, 2.2], diag__d_loss_chance=[2.5] * 5), None),
    # Frozen at initialisation: DISCRIMINATOR_FROZEN names it, not "at chance".
    (AT_CHANCE, dict(train__loss_d=[4.826] * 5, diag__d_loss_chance=[2.5] * 5, diag__d_update_ratio=[0.0] * 5), None),
    (FROZEN, dict(diag__d_update_ratio=[1e-3, 0.0, 0.0, 0.0, 0.0]), 3),
    (FROZEN, dict(diag__d_update_ratio=[1e-3, 5e-4, 2e-4, 1e-4, 1e-4]), None),  # a decaying but moving discriminator
    (FROZEN, dict(diag__d_update_ratio=[2e-6] * 5), None),  # slow, but above the floor
    (OVERPOWERING, ENHANCER_OVERPOWERED, 4),
    (OVERPOWERING, CODEC_OVERPOWERED, 4),
    (OVERPOWERING, {**CODEC_OVERPOWERED, "val__loss_mel": None}, None),  # SNR rises: quality does not fall
    (
        OVERPOWERING,
        dict(
            val__snr_db=[3.0, 5.0, 6.0, 5.5, 5.0, 4.5],
            train__loss_d=[0.1] * 6,
            diag__d_loss_chance=[2.5] * 6,
            train__loss_adv=[2.0, 2.2, 2.5, 3.0, 3.5, 4.0],
        ),
        4,
    ),
    # Quality falls and D wins, but the generator's adversarial term does not climb: a plain divergence.
    (OVERPOWERING, {**ENHANCER_OVERPOWERED, "train__loss_adv": [0.03, 0.028, 0.027, 0.026, 0.025, 0.024]}, None),
    # Quality falls and the adversarial term climbs, but D is far from winning (half of chance).
    (OVERPOWERING, {**ENHANCER_OVERPOWERED, "train__loss_d": [0.2] * 6}, None),
    # CMGAN's metric discriminator near 0 with PESQ still rising is normal (CMGAN#51).
    (OVERPOWERING, {**ENHANCER_OVERPOWERED, "val__pesq": [2.0, 2.3, 2.5, 2.6, 2.7, 2.8]}, None),
    (OVERPOWERING, {**ENHANCER_OVERPOWERED, "train__loss_adv": None}, None),  # no adversarial term logged
]


def without_none(series: dict) -> dict:
    return {name: values for name, values in series.items() if values is not None}


@pytest.mark.parametrize(("code", "series", "first_epoch"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_rule_on_scripted_trajectory(code: str, series: dict, first_epoch: int | None) -> None:
    finding = RULES[code](history(**without_none(series)))
    if first_epoch is None:
        assert finding is None or finding.severity == "info", finding
        return
    assert finding is not None and finding.code == code and finding.severity == "warning"
    assert (finding.first_epoch, finding.first_step) == (first_epoch, 100 * (first_epoch + 1))
    assert finding.evidence.endswith(".") and finding.suggestion.endswith(".")


def test_a_converged_least_squares_gan_raises_nothing() -> None:
    converged = dict(
        train__loss_d=[1.25] * 6,
        diag__d_loss_chance=[2.5] * 6,
        diag__d_margin=[0.0] * 6,
        diag__d_update_ratio=MOVING,
        train__loss_adv=[1.2] * 6,
        val__loss_mel=[1.5, 1.3, 1.2, 1.15, 1.12, 1.1],
    )
    assert [f.code for f in run_rules(history(**converged)) if f.severity != "info"] == []


def test_a_discriminator_that_thawed_is_reported_as_info() -> None:
    finding = RULES[FROZEN](history(diag__d_update_ratio=[0.0, 0.0, 0.0, 1e-3, 1e-3]))
    assert finding is not None and finding.severity == "info" and finding.first_epoch == 2


def test_evidence_quotes_the_numbers() -> None:
    at_chance = RULES[AT_CHANCE](history(**STUCK))
    assert "99.2%–100.0% of its chance value 2.50" in at_chance.evidence and "0.001 per step" in at_chance.evidence
    frozen = RULES[FROZEN](history(diag__d_update_ratio=[1e-3, 0.0, 0.0, 0.0, 0.0]))
    assert "under 1e-06 (at most 0) for 3 consecutive logging intervals by epoch 3 (step 400)" in frozen.evidence
    overpowering = RULES[OVERPOWERING](history(**ENHANCER_OVERPOWERED))
    assert "2.5% of its chance value" in overpowering.evidence
    assert "rose from 0.021 to 0.030" in overpowering.evidence and "its best 2.500 at epoch 2" in overpowering.evidence
