"""The 30 ms frames and the trimmed mean that Loizou's objective quality measures share (SSNR, LLR, WSS).

These are the settings of ``composite.m`` (Hu & Loizou, "Evaluation of objective quality measures for speech
enhancement", IEEE TASLP 16(1), 2008; Loizou, "Speech Enhancement: Theory and Practice", CRC Press), whose frame
code is Pellom and Hansen's, and of its Python port in CMGAN's ``src/tools/compute_metrics.py`` that CMGAN and
MP-SENet report their VoiceBank-DEMAND numbers with:

- frames of ``round(30 ms * fs)`` samples (480 at 16 kHz, 240 at 8 kHz) every quarter frame (120 / 60 samples,
  75% overlap), each multiplied by the Hann window ``0.5 * (1 - cos(2 pi n / (N + 1)))``, ``n = 1..N``;
- ``floor((T - N) / hop)`` frames for a ``T``-sample signal: the last complete frame is not used, as in the
  original, and a signal shorter than ``N + hop`` samples has no frame (its measures are NaN);
- machine epsilon (2.2e-16) added to both signals first, as ``composite.m`` does (CMGAN's port does it only when
  the two lengths differ), so that frames of digital silence give finite values.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view

# How each port rounds and scales; see `check_convention`.
CONVENTIONS = ("cmgan", "matlab")
SAMPLE_RATES = (8000, 16000)
# Hu & Loizou keep the 95% of frames with the smallest LLR and WSS.
KEPT_FRAME_FRACTION = 0.95


def check_convention(convention: str) -> None:
    """Raise a ``ValueError`` naming ``convention`` unless it is one of ``CONVENTIONS``.

    ``"cmgan"`` reproduces CMGAN's ``compute_metrics.py`` (and MP-SENet's copy of it) called on float arrays, as
    both projects' evaluation scripts call it; ``"matlab"`` reproduces Loizou's ``composite.m`` on the same floats.
    They differ in two places: the WSS band-energy floor (see ``weighted_spectral_slope``), which changes CSIG
    and COVL by tenths, and the rounding of the 95% frame count (Python's ``round`` halves to even, MATLAB's away
    from zero), which keeps one frame more under ``"matlab"`` when the frame count is 30 modulo 40 (270, 310, ...
    frames); on the test pairs that moved LLR and WSS by about 1%.
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}.")


def frame_length(sample_rate: int) -> int:
    """Samples in one 30 ms frame: 480 at 16 kHz, 240 at 8 kHz. Raises for other rates."""
    if sample_rate not in SAMPLE_RATES:
        raise ValueError(
            f"sample_rate must be one of {SAMPLE_RATES} Hz (the rates the composite measures are defined at), "
            f"got {sample_rate}."
        )
    return round(30 * sample_rate / 1000)


def signal_pair(
    clean: np.ndarray | torch.Tensor, processed: np.ndarray | torch.Tensor
) -> tuple[np.ndarray, np.ndarray]:
    """``clean`` and ``processed`` (1-D, ``[T]``, numpy or torch, any float dtype) as float64 numpy arrays with
    machine epsilon added, as ``composite.m`` prepares them. Raises when either is not 1-D, the lengths differ
    (cut both to the common length first, e.g. with ``cut_to_common_length``) or a sample is NaN or infinite."""
    arrays = []
    for name, signal in (("clean", clean), ("processed", processed)):
        array = (
            signal.detach().cpu().double().numpy()
            if isinstance(signal, torch.Tensor)
            else np.asarray(signal, np.float64)
        )
        if array.ndim != 1:
            raise ValueError(f"{name} must be a 1-D signal [T], got shape {tuple(array.shape)}.")
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{name} holds {int(np.sum(~np.isfinite(array)))} NaN or infinite samples.")
        arrays.append(array + np.spacing(1.0))
    if arrays[0].shape != arrays[1].shape:
        raise ValueError(
            f"clean has {arrays[0].size} samples and processed {arrays[1].size}; the measures compare them frame "
            "by frame, so cut both to the common length first."
        )
    return arrays[0], arrays[1]


def hann_frames(signal: np.ndarray, sample_rate: int) -> np.ndarray:
    """The Hann-windowed 30 ms frames of ``signal`` ``[T]``: ``[floor((T - N) / hop), N]`` float64 (a view-free
    copy), ``N = frame_length(sample_rate)``, ``hop = N // 4``."""
    length = frame_length(sample_rate)
    hop = length // 4
    count = max(0, (signal.size - length) // hop)
    if count == 0:
        return np.zeros((0, length))
    window = 0.5 * (1.0 - np.cos(2.0 * math.pi * np.arange(1, length + 1) / (length + 1)))
    return sliding_window_view(signal, length)[: count * hop : hop] * window


def mean_of_lowest(frame_values: np.ndarray, convention: str) -> float:
    """Mean of the ``round(0.95 n)`` smallest of ``n`` per-frame values, as Hu & Loizou average LLR and WSS
    (the 5% largest are outliers). NaN for no frames; NaN values sort last, as in both ports.

    ``round`` is Python's (half to even) under ``"cmgan"`` and MATLAB's (half away from zero) under
    ``"matlab"``: for 270 frames CMGAN's port keeps 256 and ``composite.m`` 257."""
    check_convention(convention)
    if frame_values.size == 0:
        return float("nan")
    exact = frame_values.size * KEPT_FRAME_FRACTION
    kept = round(exact) if convention == "cmgan" else math.floor(exact + 0.5)
    return float(np.mean(np.sort(frame_values)[:kept]))
