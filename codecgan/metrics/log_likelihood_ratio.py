"""Log-likelihood ratio (LLR), the LPC spectral-envelope distance of the composite measures."""

from __future__ import annotations

import numpy as np
import torch

from codecgan.metrics.quality_frames import check_convention, hann_frames, mean_of_lowest, signal_pair


def lpc_order(sample_rate: int) -> int:
    """The LPC analysis order ``composite.m`` uses: 10 below 10 kHz, 16 above."""
    return 10 if sample_rate < 10000 else 16


def autocorrelation(frames: np.ndarray, max_lag: int) -> np.ndarray:
    """Lags ``0..max_lag`` of each frame's (biased) autocorrelation: ``[F, N]`` -> ``[F, max_lag + 1]``."""
    length = frames.shape[1]
    return np.stack([np.sum(frames[:, : length - lag] * frames[:, lag:], axis=1) for lag in range(max_lag + 1)], axis=1)


def lpc_coefficients(lags: np.ndarray) -> np.ndarray:
    """Prediction-error filters ``[1, -a_1, ..., -a_P]`` (``[F, P + 1]``) from autocorrelation lags
    ``[F, P + 1]`` by the Levinson-Durbin recursion, frame by frame in parallel, in the order of operations of
    ``composite.m``'s ``lpcoeff`` (so that values agree with it to rounding)."""
    frames, order = lags.shape[0], lags.shape[1] - 1
    predictor = np.ones((frames, order))
    error = lags[:, 0].copy()
    for step in range(order):
        previous = predictor[:, :step].copy()
        correlation = np.sum(previous * lags[:, step:0:-1], axis=1)
        reflection = (lags[:, step + 1] - correlation) / error
        predictor[:, step] = reflection
        predictor[:, :step] = previous - reflection[:, None] * previous[:, ::-1]
        error = (1.0 - reflection * reflection) * error
    return np.concatenate([np.ones((frames, 1)), -predictor], axis=1)


def frame_log_likelihood_ratios(reference: np.ndarray, estimate: np.ndarray, sample_rate: int) -> np.ndarray:
    """Per-frame LLR ``[F]`` of two prepared signals (``quality_frames.signal_pair``); see
    ``log_likelihood_ratio``."""
    order = lpc_order(sample_rate)
    clean_frames = hann_frames(reference, sample_rate)
    clean_lags = autocorrelation(clean_frames, order)
    clean_filter = lpc_coefficients(clean_lags)
    processed_filter = lpc_coefficients(autocorrelation(hann_frames(estimate, sample_rate), order))
    lag_index = np.abs(np.arange(order + 1)[:, None] - np.arange(order + 1)[None, :])
    clean_toeplitz = clean_lags[:, lag_index]
    numerator = np.einsum("fi,fij,fj->f", processed_filter, clean_toeplitz, processed_filter)
    denominator = np.einsum("fi,fij,fj->f", clean_filter, clean_toeplitz, clean_filter)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(numerator / denominator)


def log_likelihood_ratio(
    clean: np.ndarray | torch.Tensor,
    processed: np.ndarray | torch.Tensor,
    sample_rate: int = 16000,
    convention: str = "cmgan",
) -> float:
    """Log-likelihood ratio of ``processed`` against ``clean`` (both ``[T]``, same length, 8 or 16 kHz), in
    nepers (natural log, dimensionless), 0 for identical signals.

    Itakura's LPC distance as ``composite.m`` computes it: in each Hann-windowed 30 ms frame with 75% overlap
    (``quality_frames``), ``log((a_p R_c a_p') / (a_c R_c a_c'))``, with ``a_c``, ``a_p`` the order-16 (order-10
    at 8 kHz) LPC prediction-error filters of the clean and processed frames and ``R_c`` the clean frame's
    autocorrelation (Toeplitz) matrix; then the mean of the 95% smallest frame values (``mean_of_lowest``, whose
    rounding depends on ``convention``). Frame values are not limited: Hu & Loizou's paper limits them to
    [0, 2] and pysepm's ``llr`` does so by default, but neither ``composite.m`` nor CMGAN's port does, and the
    published CSIG/COVL come from those. NaN when the signals are shorter than 37.5 ms (no frame).

    A reference with digitally silent frames (exact zeros) gives those frames LLRs of about 25 (the LPC fit of a
    windowed constant, ``eps``, predicts any real estimate badly); with more than 5% of such frames the LLR is
    large and CSIG and COVL fall to their floor of 1. Recordings have a noise floor and never show this.
    """
    check_convention(convention)
    reference, estimate = signal_pair(clean, processed)
    return mean_of_lowest(frame_log_likelihood_ratios(reference, estimate, sample_rate), convention)
