"""Every callback checks its arguments and says which value is wrong and what is allowed."""

from __future__ import annotations

import pytest

from callbacks import (
    AudioSamples,
    CodebookUsage,
    DivergenceMonitor,
    EvalDeterminism,
    GradientBalance,
    RankConsistency,
    SignalStats,
)

BAD_ARGUMENTS = [
    (GradientBalance, {"every_n_steps": 0}, "every_n_steps must be a positive integer, got 0"),
    (GradientBalance, {"gan_terms": "loss_adv"}, "gan_terms must be None or a list"),
    (RankConsistency, {"every_n_steps": -5}, "got -5"),
    (CodebookUsage, {"window_steps": 2.5}, "window_steps must be a positive integer, got 2.5"),
    (DivergenceMonitor, {"mode": "up"}, "mode must be one of max, min or null, got 'up'"),
    (DivergenceMonitor, {"action": "halt"}, "action must be one of warn, stop, warn_and_checkpoint_best, got 'halt'"),
    (DivergenceMonitor, {"patience": 0}, "patience must be a positive integer, got 0"),
    (DivergenceMonitor, {"min_drop": -0.1}, "min_drop must be None or positive, got -0.1"),
    (DivergenceMonitor, {"loss": "val/loss"}, "loss must be a train/ tag"),
    (SignalStats, {"clip_level": 1.5}, r"clip_level must be in \(0, 1\], got 1.5"),
    (EvalDeterminism, {"relative_tolerance": -1}, r"relative_tolerance must be in \[0, 1\), got -1"),
    (AudioSamples, {"sample_rate": 0}, r"sample_rate must be a positive integer \(Hz\), got 0"),
    (AudioSamples, {"n_items": 0}, "n_items must be a positive integer, got 0"),
    (AudioSamples, {"indices": [-1]}, "indices must be None or a list of dataset indices"),
]


@pytest.mark.parametrize(
    ("callback", "kwargs", "message"), BAD_ARGUMENTS, ids=[f"{c.__name__}-{list(k)[0]}" for c, k, _ in BAD_ARGUMENTS]
)
def test_bad_argument_is_named(callback: type, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        callback(**kwargs)


def test_two_divergence_monitors_have_different_state_keys() -> None:
    assert DivergenceMonitor(metric="val/pesq").state_key != DivergenceMonitor(metric="val/snr_db").state_key
