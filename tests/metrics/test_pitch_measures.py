"""F0 measures on synthetic harmonic tones of known F0, noise, and signals WORLD cannot analyse."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from codecgan.metrics.pitch_measures import NOT_ANALYSED, pitch_measures, track_f0

SAMPLE_RATE = 16000


def harmonic_tone(f0_hz: float, seconds: float = 0.8) -> np.ndarray:
    """All harmonics of ``f0_hz`` below Nyquist, weighted 1/k, with 30 ms raised-cosine fades (an abrupt onset
    bends WORLD's track at the edges)."""
    time = np.arange(int(SAMPLE_RATE * seconds)) / SAMPLE_RATE
    tone = 0.1 * sum(np.sin(2 * np.pi * f0_hz * k * time) / k for k in range(1, int(SAMPLE_RATE / 2 / f0_hz) + 1))
    fade = 0.5 - 0.5 * np.cos(np.pi * np.arange(480) / 480)
    tone[:480] *= fade
    tone[-480:] *= fade[::-1]
    return tone


def noise(seconds: float = 0.8, seed: int = 0) -> np.ndarray:
    return 0.1 * np.random.default_rng(seed).standard_normal(int(SAMPLE_RATE * seconds))


@pytest.mark.parametrize("tracker", ["harvest", "dio"])
def test_a_tone_50_cents_sharp_has_a_pitch_error_of_50_cents(tracker: str) -> None:
    measures = pitch_measures(
        harmonic_tone(200.0), harmonic_tone(200.0 * 2 ** (50 / 1200)), SAMPLE_RATE, tracker=tracker
    )
    assert measures.pitch_rmse_cents == pytest.approx(50.0, abs=2.0)
    assert measures.vuv_f1 == 1.0 and measures.vuv_error_rate == 0.0
    assert measures.frames == 161 and measures.voiced_in_both_frames >= 155
    # Both tones are equally periodic.
    assert measures.periodicity_rmse < 0.02


def test_identical_signals_score_perfectly() -> None:
    tone = torch.from_numpy(harmonic_tone(120.0)).float()
    measures = pitch_measures(tone, tone, SAMPLE_RATE)
    assert (measures.pitch_rmse_cents, measures.periodicity_rmse, measures.vuv_f1) == (0.0, 0.0, 1.0)


def test_the_tracker_follows_the_tones_f0() -> None:
    f0, times = track_f0(harmonic_tone(200.0), SAMPLE_RATE, tracker="dio")
    assert times[1] == pytest.approx(0.005)
    assert np.median(f0[f0 > 0]) == pytest.approx(200.0, abs=0.5)


def test_noise_is_unvoiced_and_voicing_errors_are_counted() -> None:
    tone, hiss = harmonic_tone(200.0), noise()
    both_noise = pitch_measures(hiss, noise(seed=1), SAMPLE_RATE, tracker="dio")
    assert both_noise.reference_voiced_frames == both_noise.estimate_voiced_frames == 0
    assert math.isnan(both_noise.vuv_f1) and math.isnan(both_noise.pitch_rmse_cents)
    assert both_noise.vuv_error_rate == 0.0 and both_noise.periodicity_rmse == 0.0
    # A vocoder that turns a voiced utterance into noise: every voiced frame is missed.
    lost_voicing = pitch_measures(tone, hiss, SAMPLE_RATE, tracker="dio")
    assert lost_voicing.vuv_f1 == 0.0 and lost_voicing.estimate_voiced_frames == 0
    assert lost_voicing.vuv_error_rate == pytest.approx(lost_voicing.reference_voiced_frames / 161)
    # The tone's periodicity (about 0.9) against noise's (0).
    assert lost_voicing.periodicity_rmse == pytest.approx(0.9, abs=0.05)


def test_half_the_frames_unvoiced_gives_f1_two_thirds() -> None:
    """Reference voiced throughout, estimate voiced in its first half only: recall 1/2, precision 1, F1 2/3."""
    tone = harmonic_tone(200.0)
    estimate = np.concatenate([tone[: tone.size // 2], noise(0.4)])
    measures = pitch_measures(tone, estimate, SAMPLE_RATE, tracker="dio")
    recall = measures.voiced_in_both_frames / measures.reference_voiced_frames
    assert recall == pytest.approx(0.5, abs=0.05)
    assert measures.vuv_f1 == pytest.approx(2 / 3, abs=0.03)
    assert measures.pitch_rmse_cents < 5.0


@pytest.mark.parametrize("length", [0, 1, 100, 959])
def test_too_short_signals_give_nan(length: int) -> None:
    """Under three periods of the 50 Hz F0 floor (960 samples at 16 kHz) WORLD cannot analyse."""
    tone = harmonic_tone(200.0)[:length]
    assert pitch_measures(tone, tone, SAMPLE_RATE) == NOT_ANALYSED


def test_silence_gives_nan_and_silent_output_counts_as_unvoiced() -> None:
    silence, tone = np.zeros(SAMPLE_RATE // 2), harmonic_tone(200.0, 0.5)
    assert pitch_measures(silence, tone, SAMPLE_RATE) == NOT_ANALYSED
    assert math.isnan(NOT_ANALYSED.pitch_rmse_cents) and NOT_ANALYSED.frames == 0
    muted = pitch_measures(tone, silence, SAMPLE_RATE, tracker="dio")
    assert muted.vuv_f1 == 0.0 and muted.frames == 101


def test_an_unknown_tracker_is_named_in_the_error() -> None:
    with pytest.raises(ValueError, match="harvest, dio; got 'crepe'"):
        pitch_measures(harmonic_tone(200.0), harmonic_tone(200.0), SAMPLE_RATE, tracker="crepe")


def test_a_batch_is_refused_with_its_shape() -> None:
    with pytest.raises(ValueError, match=r"estimate must be one utterance.*\(2, 1, 8000\)"):
        pitch_measures(torch.zeros(1, 1, 8000), torch.zeros(2, 1, 8000), SAMPLE_RATE)


@pytest.mark.parametrize("bad_value", [math.nan, math.inf])
def test_a_diverged_output_is_not_analysed_rather_than_unvoiced(bad_value: float) -> None:
    tone = harmonic_tone(200.0, 0.5)
    diverged = tone.copy()
    diverged[100:200] = bad_value
    assert pitch_measures(tone, diverged, SAMPLE_RATE, tracker="dio") == NOT_ANALYSED
