"""Mel-cepstral distortion (MCD, dB) of a vocoder's output against the recording it resynthesises."""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from codecgan.metrics.pitch_measures import (
    F0_CEIL_HZ,
    F0_FLOOR_HZ,
    FRAME_PERIOD_MS,
    as_float64_pair,
    can_analyse,
    track_f0,
)

# The mel-cepstrum order most MCD tables use (SPTK's default for 16-24 kHz speech): c1..c24.
MEL_CEPSTRUM_ORDER = 24
# (10 / ln 10) * sqrt(2): turns the Euclidean distance of c1..cM (natural-log amplitude cepstra) into dB.
DB_PER_NEPER_DISTANCE = 10.0 / math.log(10.0) * math.sqrt(2.0)


def all_pass_alpha(sample_rate: int) -> float:
    """The all-pass constant whose frequency warping best fits the mel scale at ``sample_rate`` (Hz).

    Least squares, on 1000 evenly spaced frequencies from 0 to Nyquist, between the warped frequency
    ``ω + 2 atan(α sin ω / (1 - α cos ω))`` and Fant's mel scale ``1000 log2(1 + f / 1000)``, both normalised to
    [0, π], over α on a 0.001 grid. Gives the usual values: 0.312 at 8 kHz, 0.410 at 16 kHz (tables often round
    it to 0.42), 0.455 at 22.05 kHz, 0.466 at 24 kHz, 0.544 at 44.1 kHz, 0.554 at 48 kHz.
    """
    return _fitted_alpha(int(sample_rate))


@functools.lru_cache(maxsize=16)
def _fitted_alpha(sample_rate: int) -> float:
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive number of Hz, got {sample_rate}.")
    omega = np.linspace(0.0, math.pi, 1000)
    frequency_hz = omega / math.pi * sample_rate / 2
    mel = np.log1p(frequency_hz / 1000.0) / math.log1p(sample_rate / 2 / 1000.0) * math.pi
    alphas = np.arange(0, 1000) / 1000.0
    errors = [np.sum((warped_frequency(omega, alpha) - mel) ** 2) for alpha in alphas]
    return float(alphas[int(np.argmin(errors))])


def warped_frequency(omega: np.ndarray, alpha: float) -> np.ndarray:
    """The phase response of the first-order all-pass ``(z^-1 - α) / (1 - α z^-1)``: ``ω`` -> warped ``ω̃``
    (radians, both in [0, π]); ``alpha`` 0 is the identity."""
    return omega + 2.0 * np.arctan(alpha * np.sin(omega) / (1.0 - alpha * np.cos(omega)))


@functools.lru_cache(maxsize=16)
def _warping_matrix(cepstrum_length: int, order: int, alpha: float) -> np.ndarray:
    """``[order + 1, cepstrum_length]``: the linear map from a one-sided cepstrum to the mel-cepstrum of the
    same spectrum, by Oppenheim and Johnson's (1972) all-pass recursion run on each unit cepstrum at once."""
    beta = 1.0 - alpha * alpha
    basis = np.eye(cepstrum_length)
    state = np.zeros((order + 1, cepstrum_length))
    for index in range(cepstrum_length - 1, -1, -1):
        previous = state
        state = np.empty_like(previous)
        state[0] = basis[index] + alpha * previous[0]
        if order >= 1:
            state[1] = beta * previous[0] + alpha * previous[1]
        for m in range(2, order + 1):
            state[m] = previous[m - 1] + alpha * (previous[m] - state[m - 1])
    return state


def mel_cepstrum(envelope: np.ndarray, order: int = MEL_CEPSTRUM_ORDER, alpha: float = 0.0) -> np.ndarray:
    """Mel-cepstra ``[F, order + 1]`` of power spectral envelopes ``[F, K]`` (``K = fft_size / 2 + 1`` bins from
    0 Hz to Nyquist, e.g. WORLD's CheapTrick).

    ``c̃_0..c̃_order`` are the one-sided cepstrum of the natural-log amplitude ``ln |H| = ½ ln envelope`` on the
    frequency axis warped by the all-pass constant ``alpha``: ``ln |H(ω)| ≈ c̃_0 + Σ_m c̃_m cos(m ω̃(ω))``. The
    linear cepstrum comes from the inverse FFT of the log envelope; the warping is exact for it (no
    interpolation of the spectrum), so only the truncation at ``order`` approximates.
    """
    log_amplitude = 0.5 * np.log(np.maximum(envelope, np.finfo(np.float64).tiny))
    two_sided = np.fft.irfft(log_amplitude, axis=-1)
    half = envelope.shape[-1]
    one_sided = two_sided[..., :half].copy()
    # Each cosine's amplitude is split between the positive and negative quefrency, except at 0 and Nyquist.
    one_sided[..., 1 : half - 1] *= 2.0
    return one_sided @ _warping_matrix(half, order, float(alpha)).T


def frame_mel_cepstral_distortions(reference_cepstra: np.ndarray, estimate_cepstra: np.ndarray) -> np.ndarray:
    """Per-frame MCD in dB, ``[F]``: ``(10 / ln 10) sqrt(2 Σ_{m≥1} (c̃_m - ĉ_m)²)`` of mel-cepstra ``[F, M + 1]``;
    ``c̃_0`` (the frame's level) is left out. This equals the RMS difference, in dB over the warped frequency
    axis, of the two order-``M`` smoothed log envelopes less their means."""
    difference = reference_cepstra[:, 1:] - estimate_cepstra[:, 1:]
    return DB_PER_NEPER_DISTANCE * np.sqrt(np.sum(difference**2, axis=1))


def mel_cepstral_distortion(
    reference: np.ndarray | torch.Tensor,
    estimate: np.ndarray | torch.Tensor,
    sample_rate: int,
    order: int = MEL_CEPSTRUM_ORDER,
    alpha: float | None = None,
    frame_period_ms: float = FRAME_PERIOD_MS,
    f0_floor_hz: float = F0_FLOOR_HZ,
    f0_ceil_hz: float = F0_CEIL_HZ,
    tracker: str = "harvest",
    voiced_only: bool = False,
) -> float:
    """MCD in dB of ``estimate`` against ``reference`` (both ``[T]`` at ``sample_rate``; the longer is cut to the
    shorter). Lower is better; 0 for identical signals and for signals that differ only in gain.

    Each signal is analysed on its own: F0 by WORLD (``pitch_measures.track_f0``), then its spectral envelope by
    WORLD's CheapTrick every ``frame_period_ms``, then mel-cepstra c̃_0..c̃_``order`` (``mel_cepstrum``) with the
    all-pass constant ``alpha`` (default ``all_pass_alpha(sample_rate)``). Frames are paired by time, with no
    dynamic time warping, because a vocoder's output is time-aligned with its input. The result is the mean of
    ``frame_mel_cepstral_distortions`` over all frames, or, with ``voiced_only``, over the frames voiced in the
    reference (NaN if there are none). NaN, never an exception, when the signals are shorter than three periods
    of ``f0_floor_hz`` (WORLD needs that much), the reference is all zeros, or either holds a NaN or infinity
    (``pitch_measures.can_analyse``).
    """
    import pyworld

    reference_audio, estimate_audio = as_float64_pair(reference, estimate)
    if not can_analyse(reference_audio, estimate_audio, sample_rate, f0_floor_hz):
        return float("nan")
    alpha = all_pass_alpha(sample_rate) if alpha is None else alpha
    fft_size = pyworld.get_cheaptrick_fft_size(sample_rate, f0_floor_hz)
    cepstra = []
    reference_voiced = None
    for audio in (reference_audio, estimate_audio):
        f0, times = track_f0(audio, sample_rate, frame_period_ms, f0_floor_hz, f0_ceil_hz, tracker)
        if reference_voiced is None:
            reference_voiced = f0 > 0
        envelope = pyworld.cheaptrick(audio, f0, times, sample_rate, f0_floor=f0_floor_hz, fft_size=fft_size)
        cepstra.append(mel_cepstrum(envelope, order, alpha))
    distortions = frame_mel_cepstral_distortions(*cepstra)
    if voiced_only:
        distortions = distortions[reference_voiced]
    return float(np.mean(distortions)) if distortions.size else float("nan")
