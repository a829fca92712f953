"""Segmental SNR (SSNR) as the composite-measure literature computes it."""

from __future__ import annotations

import numpy as np
import torch

from codecgan.metrics.quality_frames import hann_frames, signal_pair

# Frame SNRs are limited to this range (dB) before averaging (Hu & Loizou 2008; composite.m).
MIN_FRAME_SNR_DB = -10.0
MAX_FRAME_SNR_DB = 35.0


def frame_snrs_db(reference: np.ndarray, estimate: np.ndarray, sample_rate: int) -> np.ndarray:
    """Per-frame SNRs in dB, limited to [-10, 35], of two prepared signals (``quality_frames.signal_pair``):
    ``[F]``; see ``segmental_snr``."""
    clean_frames = hann_frames(reference, sample_rate)
    error_frames = clean_frames - hann_frames(estimate, sample_rate)
    eps = np.spacing(1.0)
    signal_energy = np.sum(clean_frames**2, axis=1)
    error_energy = np.sum(error_frames**2, axis=1)
    frame_snr_db = 10.0 * np.log10(signal_energy / (error_energy + eps) + eps)
    return np.clip(frame_snr_db, MIN_FRAME_SNR_DB, MAX_FRAME_SNR_DB)


def segmental_snr(
    clean: np.ndarray | torch.Tensor, processed: np.ndarray | torch.Tensor, sample_rate: int = 16000
) -> float:
    """Segmental SNR in dB of ``processed`` against ``clean`` (both ``[T]``, same length, 8 or 16 kHz).

    Loizou's definition (``composite.m``'s ``snr``, CMGAN's ``compute_metrics.py``): in each Hann-windowed
    30 ms frame with 75% overlap (``quality_frames``), ``10 log10(S / (N + eps) + eps)`` with ``S`` the clean
    frame's energy and ``N`` the energy of ``clean - processed``, limited to [-10, 35] dB; the mean over all
    frames, none trimmed. Level-sensitive only through ``eps`` (2.2e-16), so in practice scale-free in the pair.

    Identical signals score the 35 dB cap, except that frames where the reference is digitally silent score
    -10 dB whatever the estimate (their ``S`` is about 1e-30): a synthetic reference with pauses of exact zeros
    has a lower ceiling than a recording with a noise floor. NaN when the signals are shorter than 37.5 ms
    (no frame). This is the SSNR that CMGAN, MP-SENet and ``composite.m`` report; facebookresearch/denoiser's
    ``matlab_eval.py`` (and SpeechBrain's copy of it) first removes each signal's mean and scales the estimate
    to the reference's peak, which gives different values.
    """
    frame_snrs = frame_snrs_db(*signal_pair(clean, processed), sample_rate)
    return float(np.mean(frame_snrs)) if frame_snrs.size else float("nan")
