"""MCD against its written-out definition, on synthetic spectra and signals with hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.signal import lfilter

from codecgan.metrics.mel_cepstral_distortion import (
    all_pass_alpha,
    frame_mel_cepstral_distortions,
    mel_cepstral_distortion,
    mel_cepstrum,
    warped_frequency,
)

SAMPLE_RATE = 16000
# (10 / ln 10) sqrt(2 Σ_{m=1}^{24} 0.5^(2m) / m²), summed by hand: 0.25 + 0.015625 + 0.0017361 + 0.00024414
# + 0.0000391 + 0.0000068 + 0.0000012 + 0.0000002 = 0.2676526 -> sqrt(0.5353052) = 0.731646 -> 3.1775 dB.
HAND_MCD_OF_WARPED_ZERO_AT_HALF_DB = 3.1775


def harmonic_tone(f0_hz: float, seconds: float = 0.8) -> np.ndarray:
    """A 1/k-weighted sum of all harmonics of ``f0_hz`` below Nyquist (energy across the whole band)."""
    time = np.arange(int(SAMPLE_RATE * seconds)) / SAMPLE_RATE
    harmonics = range(1, int(SAMPLE_RATE / 2 / f0_hz) + 1)
    return 0.1 * sum(np.sin(2 * np.pi * f0_hz * k * time) / k for k in harmonics)


def warped_zero_filter(signal: np.ndarray, zero: float, alpha: float) -> np.ndarray:
    """``signal`` through ``1 - zero · A(z)`` with the all-pass ``A(z) = (z^-1 - α) / (1 - α z^-1)``, whose
    mel-cepstrum is exactly ``-zero^m / m`` (the series of ``ln(1 - zero · A)``)."""
    return lfilter([1 + zero * alpha, -(alpha + zero)], [1, -alpha], signal)


@pytest.mark.parametrize(
    "sample_rate, alpha", [(8000, 0.312), (16000, 0.41), (22050, 0.455), (24000, 0.466), (44100, 0.544)]
)
def test_all_pass_alpha_fits_the_mel_scale_as_the_usual_tables(sample_rate: int, alpha: float) -> None:
    assert all_pass_alpha(sample_rate) == pytest.approx(alpha, abs=1e-9)


def test_mel_cepstrum_is_the_cosine_series_of_the_log_amplitude_on_the_warped_axis() -> None:
    """The written-out definition: c̃_0 = (1/π)∫ ln|H| dω̃, c̃_m = (2/π)∫ ln|H| cos(m ω̃) dω̃, with ln|H| read at
    the linear frequency ω(ω̃) (the inverse warping is the all-pass with -α)."""
    alpha, order, fft_size = 0.41, 24, 1024
    omega = np.linspace(0, np.pi, fft_size // 2 + 1)

    # A smooth envelope: two resonances and a tilt, as a power spectrum.
    def log_amplitude(w: np.ndarray) -> np.ndarray:
        return -0.8 * w + 1.5 * np.exp(-((w - 0.6) ** 2) / 0.02) + 0.7 * np.exp(-((w - 1.9) ** 2) / 0.05)

    envelope = np.exp(2 * log_amplitude(omega))[None]
    warped_grid = np.linspace(0, np.pi, 20001)
    on_warped_axis = log_amplitude(warped_frequency(warped_grid, -alpha))
    expected = [np.trapezoid(on_warped_axis * np.cos(m * warped_grid), warped_grid) / np.pi for m in range(order + 1)]
    expected = np.array(expected) * np.r_[1.0, np.full(order, 2.0)]
    # 5e-6 apart (of values up to 0.94): the linear cepstrum of 513 bins aliases the narrow resonance's tail.
    np.testing.assert_allclose(mel_cepstrum(envelope, order, alpha)[0], expected, atol=1e-5)


def test_a_known_spectral_change_gives_the_hand_computed_distortion_per_frame() -> None:
    alpha, zero = 0.41, 0.5
    omega = np.linspace(0, np.pi, 513)
    envelope = np.exp(np.cos(omega))[None] + 0.1
    change = np.abs(1 - zero * np.exp(-1j * warped_frequency(omega, alpha))) ** 2
    distortion = frame_mel_cepstral_distortions(
        mel_cepstrum(envelope, 24, alpha), mel_cepstrum(envelope * change, 24, alpha)
    )
    written_out = 10 / math.log(10) * math.sqrt(2 * sum(zero ** (2 * m) / m**2 for m in range(1, 25)))
    assert written_out == pytest.approx(HAND_MCD_OF_WARPED_ZERO_AT_HALF_DB, abs=1e-4)
    assert distortion[0] == pytest.approx(written_out, abs=1e-9)


def test_a_filtered_signal_has_the_filters_distortion() -> None:
    reference = harmonic_tone(200.0)
    estimate = warped_zero_filter(reference, 0.5, all_pass_alpha(SAMPLE_RATE))
    # WORLD's envelope of the filtered tone is the filter times the tone's, to 0.3 mdB on average.
    assert mel_cepstral_distortion(reference, estimate, SAMPLE_RATE) == pytest.approx(3.1775, abs=0.005)


def test_identical_signals_and_a_gain_change_have_no_distortion() -> None:
    reference = harmonic_tone(150.0)
    assert mel_cepstral_distortion(reference, reference, SAMPLE_RATE) == 0.0
    tensor = torch.from_numpy(reference).float()
    assert mel_cepstral_distortion(tensor, 0.5 * tensor, SAMPLE_RATE, tracker="dio") < 1e-3


def test_only_voiced_frames_and_a_different_length_are_accepted() -> None:
    reference = np.concatenate([np.zeros(1600), harmonic_tone(200.0, 0.5), np.zeros(1600)])
    estimate = warped_zero_filter(reference, 0.5, all_pass_alpha(SAMPLE_RATE))
    voiced = mel_cepstral_distortion(reference, estimate[:-100], SAMPLE_RATE, voiced_only=True, tracker="dio")
    assert voiced == pytest.approx(3.1775, abs=0.05)


@pytest.mark.parametrize("length", [0, 100, 959])
def test_too_short_or_silent_references_give_nan(length: int) -> None:
    """Under three periods of the 50 Hz F0 floor (960 samples at 16 kHz) WORLD cannot analyse."""
    silent = np.zeros(SAMPLE_RATE // 2)
    assert math.isnan(mel_cepstral_distortion(silent, harmonic_tone(200.0, 0.5), SAMPLE_RATE))
    short = harmonic_tone(200.0, 0.5)[:length]
    assert math.isnan(mel_cepstral_distortion(short, short, SAMPLE_RATE))


def test_a_diverged_output_gives_nan_and_a_muted_one_a_large_distortion() -> None:
    tone = harmonic_tone(200.0, 0.5)
    diverged = tone.copy()
    diverged[100:200] = math.nan
    assert math.isnan(mel_cepstral_distortion(tone, diverged, SAMPLE_RATE, tracker="dio"))
    assert mel_cepstral_distortion(tone, np.zeros_like(tone), SAMPLE_RATE, tracker="dio") > 5.0
