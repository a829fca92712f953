"""The family's quality metric has one definition: the rules that watch quality, the live callbacks that feed them and
`codecgan confirm`'s quality experiments all choose it from `codecgan.diagnosis.quality_metric`."""

from __future__ import annotations

import math

import pytest

from codecgan.confirm.experiments import EXPERIMENTS, QUALITY
from codecgan.diagnosis import MetricHistory
from codecgan.diagnosis.quality_metric import (
    QUALITY_METRICS,
    direction,
    logged_quality_metric,
    quality_metric,
    quality_values,
)
from codecgan.diagnosis.registry import RULES
from tests.diagnosis.test_rules import FALLING, history
from tests.diagnosis.test_schedule_and_data_rules import exponential, schedule_history

# What each family logs at validation, and the metric it is judged by.
FAMILY_LOGS = [
    ({"val/pesq": 2.0, "val/snr_db": 5.0, "val/si_sdr": 6.0}, ("val/pesq", "max")),  # an enhancer with SignalStats
    ({"val/loss_mel": 1.2, "val/snr_db": -1.0, "val/si_sdr": -3.0}, ("val/loss_mel", "min")),  # a codec
    ({"val/mel_distance": 0.9, "val/snr_db": -2.0, "val/si_sdr": -20.0}, ("val/mel_distance", "min")),  # a vocoder
    ({"val/si_sdr": 6.0, "val/snr_db": 5.0}, ("val/si_sdr", "max")),  # a module logging neither
    ({"val/snr_db": 5.0}, ("val/snr_db", "max")),
    ({"val/stoi": 0.9}, None),
]


@pytest.mark.parametrize(("logged", "chosen"), FAMILY_LOGS)
def test_one_choice_from_a_history_and_from_what_validation_logs(logged: dict, chosen) -> None:
    built = MetricHistory()
    for tag, value in logged.items():
        built.add(tag + "_epoch", value, step=99, epoch=0)  # as Lightning names a metric logged on both axes
    assert quality_metric(built) == chosen
    assert logged_quality_metric({tag + "_epoch": value for tag, value in logged.items()}) == chosen
    assert logged_quality_metric(logged) == chosen


def test_directions_ignore_lightnings_suffixes_and_default_to_higher_is_better() -> None:
    assert [direction(tag) for tag, _ in QUALITY_METRICS] == ["max", "min", "min", "max", "max"]
    assert direction("val/loss_mel_epoch") == direction("val/loss_mel_step") == "min"
    assert direction("val/stoi") == "max"


def test_a_callback_records_every_finite_candidate() -> None:
    metrics = {"val/pesq": 2.5, "val/loss_mel_epoch": 1.25, "val/si_sdr": math.nan, "val/snr_db": 4.0, "val/x": 1.0}
    assert quality_values(metrics) == {"val/pesq": 2.5, "val/loss_mel": 1.25, "val/snr_db": 4.0}
    assert quality_values({"val/pesq": 2.5, "val/pesq_epoch": 3.0}) == {"val/pesq": 2.5}


def test_confirm_decides_quality_experiments_on_the_same_metric() -> None:
    assert QUALITY == {"*": QUALITY_METRICS}
    for code in ("LOSS_METRIC_DIVERGENCE", "DISCRIMINATOR_OVERPOWERING", "LR_VANISHED"):
        for experiment in EXPERIMENTS[code]:
            for family in ("codec", "enhancement"):
                assert experiment.metrics_for(family) == QUALITY_METRICS, (code, experiment.name, family)


# SI-SDR falls from its best while SNR keeps rising: the rules must all read SI-SDR, the earlier candidate.
SI_SDR_FALLS = [3.0, 5.0, 6.0, 5.5, 5.0, 4.5, 4.0, 3.5]
SNR_RISES = [1.0, 2.0, 3.0, 3.5, 4.0, 4.5, 5.0, 5.5]


def test_the_rules_that_watch_quality_read_the_same_metric() -> None:
    divergence = RULES["LOSS_METRIC_DIVERGENCE"](
        history(val__si_sdr=SI_SDR_FALLS, val__snr_db=SNR_RISES, train__loss_g=FALLING[:8])
    )
    overpowering = RULES["DISCRIMINATOR_OVERPOWERING"](
        history(
            val__si_sdr=SI_SDR_FALLS[:6],
            val__snr_db=SNR_RISES[:6],
            train__loss_d=[0.1] * 6,
            diag__d_loss_chance=[2.5] * 6,
            train__loss_adv=[2.0, 2.2, 2.5, 3.0, 3.5, 4.0],
        )
    )
    stalled = schedule_history(exponential(0.99), "val/si_sdr", lambda r: 5.0, 4000, 50, 200)
    for round_index, step in enumerate(range(200, 4001, 200)):
        stalled.add("val/snr_db", 1.0 + round_index, step=step, epoch=round_index)
    lr_vanished = RULES["LR_VANISHED"](stalled)
    for finding in (divergence, overpowering, lr_vanished):
        assert finding is not None and finding.severity != "info", finding
        assert finding.values["metric"] == "val/si_sdr" and finding.values["mode"] == "max", finding.code
