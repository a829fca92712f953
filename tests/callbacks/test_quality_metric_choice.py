"""The callbacks that watch validation quality choose it as `codecgan diagnose` does
(`codecgan.diagnosis.quality_metric`): DivergenceMonitor picks the first candidate validation logs, DiscriminatorHealth
and LearningRateHealth keep every candidate so that their rules choose among the tags the logs hold."""

from __future__ import annotations

import pytest
import torch

from callbacks import DiscriminatorHealth, DivergenceMonitor, LearningRateHealth
from codecgan.diagnosis.quality_metric import quality_metric
from tests.callbacks.callback_fakes import FakeModule, FakeTrainer

# A module logging neither PESQ nor the mel distance; Lightning's `_epoch` name for one of them.
LOGGED = {"val/snr_db": torch.tensor(4.0), "val/si_sdr_epoch": torch.tensor(6.0), "val/stoi": torch.tensor(0.9)}


def test_divergence_monitor_watches_the_first_logged_candidate() -> None:
    callback, trainer = DivergenceMonitor(), FakeTrainer(callback_metrics=dict(LOGGED))
    callback.on_validation_end(trainer, FakeModule())
    assert (callback.metric, callback.mode) == ("val/si_sdr", "max")
    assert callback.history.series("val/si_sdr")[0].value == 6.0


def test_a_configured_metric_takes_its_known_direction_whatever_lightnings_suffix() -> None:
    assert DivergenceMonitor(metric="val/loss_mel_epoch").mode == "min"
    assert DivergenceMonitor(metric="val/stoi").mode == "max"


@pytest.mark.parametrize("callback_class", [DiscriminatorHealth, LearningRateHealth])
def test_the_quality_rules_callbacks_keep_every_candidate(callback_class) -> None:
    callback, trainer = callback_class(), FakeTrainer(callback_metrics=dict(LOGGED))
    callback.on_validation_end(trainer, FakeModule())
    assert {tag: callback.history.series(tag)[0].value for tag in callback.history.tags()} == {
        "val/si_sdr": 6.0,
        "val/snr_db": 4.0,
    }
    assert quality_metric(callback.history) == ("val/si_sdr", "max")
