"""Weighted spectral slope (WSS), Klatt's critical-band slope distance as the composite measures use it."""

from __future__ import annotations

import math

import numpy as np
import torch

from codecgan.metrics.quality_frames import check_convention, frame_length, hann_frames, mean_of_lowest, signal_pair

# Pellom and Hansen's 25 critical bands (centre, bandwidth in Hz), spanning 0-4 kHz at every sample rate.
BAND_CENTRES_HZ = np.array([
    50.0, 120.0, 190.0, 260.0, 330.0, 400.0, 470.0, 540.0, 617.372, 703.378, 798.717, 904.128, 1020.38, 1148.30,
    1288.72, 1442.54, 1610.70, 1794.16, 1993.93, 2211.08, 2446.71, 2701.97, 2978.04, 3276.17, 3597.63,
])  # fmt: skip
BAND_WIDTHS_HZ = np.array([
    70.0, 70.0, 70.0, 70.0, 70.0, 70.0, 70.0, 77.3724, 86.0056, 95.3398, 105.411, 116.256, 127.914, 140.423,
    153.823, 168.154, 183.457, 199.776, 217.153, 235.631, 255.255, 276.072, 298.126, 321.465, 346.136,
])  # fmt: skip
# Klatt's (1982, p. 1280) constants of the global- and local-peak weights, in dB.
GLOBAL_PEAK_WEIGHT_DB = 20.0
LOCAL_PEAK_WEIGHT_DB = 1.0
# Band energies are floored at this before taking dB (composite.m). CMGAN's port first divides the float
# signal by 32768 (as if it were int16), i.e. floors the energy of the signal as given at 1e-10 * 32768**2.
BAND_ENERGY_FLOOR = {"matlab": 1e-10, "cmgan": 1e-10 * 32768.0**2}


def critical_band_filters(sample_rate: int) -> np.ndarray:
    """Gaussian-shaped critical-band weights over the FFT bins ``0 .. n_fft/2 - 1``: ``[25, n_fft / 2]``, with
    ``n_fft`` the power of two at or above two frames (1024 at 16 kHz). Each band's weights sum alike, and
    weights below -30 dB are zero."""
    half_fft = 2 ** math.ceil(math.log2(2 * frame_length(sample_rate))) // 2
    centres = np.floor(BAND_CENTRES_HZ / (sample_rate / 2) * half_fft)
    widths = BAND_WIDTHS_HZ / (sample_rate / 2) * half_fft
    bins = np.arange(half_fft)
    normalisation = np.log(BAND_WIDTHS_HZ[0]) - np.log(BAND_WIDTHS_HZ)
    filters = np.exp(-11.0 * ((bins[None, :] - centres[:, None]) / widths[:, None]) ** 2 + normalisation[:, None])
    # The original's "-30 dB" point uses 2.303 for ln(10).
    return np.where(filters > math.exp(-30.0 / (2.0 * 2.303)), filters, 0.0)


def band_levels_db(frames: np.ndarray, filters: np.ndarray, energy_floor: float) -> np.ndarray:
    """Critical-band energies in dB of Hann-windowed frames: ``[F, N]`` -> ``[F, 25]``."""
    half_fft = filters.shape[1]
    power = np.abs(np.fft.rfft(frames, 2 * half_fft, axis=1)[:, :half_fft]) ** 2
    return 10.0 * np.log10(np.maximum(power @ filters.T, energy_floor))


def nearest_peak_levels(levels: np.ndarray, slopes: np.ndarray) -> np.ndarray:
    """For each of the 24 lower bands, the level of the spectral peak the original's search reaches: searching
    right while the slope rises (it stops one band short of the peak, as Pellom and Hansen's code does), left
    while it falls. ``levels [F, 25]``, ``slopes [F, 24]`` -> ``[F, 24]``."""
    bands = slopes.shape[1]
    index = np.arange(bands)
    # First band at or after i whose slope is not rising (bands if none), and last band at or before i that rises
    # (-1 if none): the two loops of the original, for all bands and frames at once.
    first_not_rising = np.minimum.accumulate(np.where(slopes <= 0, index, bands)[:, ::-1], axis=1)[:, ::-1]
    last_rising = np.maximum.accumulate(np.where(slopes > 0, index, -1), axis=1)
    peak_band = np.where(slopes > 0, first_not_rising - 1, last_rising + 1)
    return np.take_along_axis(levels, peak_band, axis=1)


def frame_spectral_slope_distances(
    reference: np.ndarray, estimate: np.ndarray, sample_rate: int, convention: str
) -> np.ndarray:
    """Per-frame WSS ``[F]`` of two prepared signals (``quality_frames.signal_pair``); see
    ``weighted_spectral_slope``."""
    check_convention(convention)
    filters = critical_band_filters(sample_rate)
    weights, distances = [], []
    for signal in (reference, estimate):
        levels = band_levels_db(hann_frames(signal, sample_rate), filters, BAND_ENERGY_FLOOR[convention])
        slopes = np.diff(levels, axis=1)
        lower = levels[:, :-1]
        global_weight = GLOBAL_PEAK_WEIGHT_DB / (GLOBAL_PEAK_WEIGHT_DB + levels.max(axis=1, keepdims=True) - lower)
        local_peaks = nearest_peak_levels(levels, slopes)
        local_weight = LOCAL_PEAK_WEIGHT_DB / (LOCAL_PEAK_WEIGHT_DB + local_peaks - lower)
        weights.append(global_weight * local_weight)
        distances.append(slopes)
    weight = (weights[0] + weights[1]) / 2.0
    # Dividing by the weights' sum is not Klatt's; the original does it to normalise the measure.
    return np.sum(weight * (distances[0] - distances[1]) ** 2, axis=1) / np.sum(weight, axis=1)


def weighted_spectral_slope(
    clean: np.ndarray | torch.Tensor,
    processed: np.ndarray | torch.Tensor,
    sample_rate: int = 16000,
    convention: str = "cmgan",
) -> float:
    """Weighted spectral slope distance of ``processed`` against ``clean`` (both ``[T]``, same length, 8 or
    16 kHz): a weighted mean of squared differences of critical-band slopes (dB per band), 0 for identical
    signals, typically 20-80 for noisy speech.

    Klatt's measure with Pellom and Hansen's 25 Gaussian critical bands, as ``composite.m`` computes it: in each
    Hann-windowed 30 ms frame with 75% overlap (``quality_frames``), band energies from a 1024-point FFT (512 at
    8 kHz) in dB, slopes between adjacent bands, weights ``20 / (20 + max - level) * 1 / (1 + peak - level)``
    averaged between the two signals; then the mean of the 95% smallest frame values (``mean_of_lowest``). The
    bands span 0-4 kHz at both rates, so content above 4 kHz does not count.

    ``convention`` sets the band-energy floor, and this is where implementations disagree most:
    ``composite.m`` floors energies at 1e-10 (-100 dB for a signal in [-1, 1]); CMGAN's ``compute_metrics.py``
    divides the signal by 32768 first, meant for int16 samples, but CMGAN's and MP-SENet's evaluation scripts
    pass floats in [-1, 1], so every band below about -10 dB (a noise floor under roughly -36 dBFS) is floored,
    and floored bands match exactly. Their WSS is therefore much lower and depends on the signal's level: on
    synthetic speech with residual noise at -50 to -20 dBFS we measured 0.1-38 ("cmgan") against 13-89
    ("matlab"), i.e. CSIG 0.11-0.53 and COVL 0.09-0.41 higher under ``"cmgan"``; scaling a pair by 0.1 changes
    its ``"cmgan"`` WSS but not its ``"matlab"`` one. ``"cmgan"`` gives numbers comparable with CMGAN's and
    MP-SENet's tables (CSIG 4.63 and 4.73 on VoiceBank-DEMAND); papers scored with ``composite.m``, pysepm or
    facebookresearch/denoiser's port used the -100 dB floor and are comparable with ``"matlab"``.
    """
    reference, estimate = signal_pair(clean, processed)
    return mean_of_lowest(frame_spectral_slope_distances(reference, estimate, sample_rate, convention), convention)
