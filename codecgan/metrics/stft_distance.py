"""DAC's multi-resolution STFT distance, the codec papers' "STFT distance"."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor


def multiscale_stft_distance(
    estimate: Tensor,
    reference: Tensor,
    window_lengths: Sequence[int] = (2048, 512),
    clamp_eps: float = 1e-5,
    power: float = 2.0,
) -> Tensor:
    """Σ_w [L1(log10(clamp(|X_w|, eps)^power), log10(clamp(|Y_w|, eps)^power)) + L1(|X_w|, |Y_w|)], as DAC's
    ``MultiScaleSTFTLoss`` with its defaults: periodic Hann windows of 2048 and 512 samples, hop window / 4,
    centred reflect padding, mean absolute differences. Lower is better; 0 for identical signals.

    Shapes: ``estimate``, ``reference``: ``[T]`` or ``[B, T]`` (or ``[B, 1, T]``), same shape -> scalar (mean over
    the batch's frames and bins), in fp32.
    """
    if estimate.shape != reference.shape:
        raise ValueError(f"estimate {tuple(estimate.shape)} and reference {tuple(reference.shape)} differ in shape.")
    both = torch.stack([estimate.float(), reference.float()]).reshape(2, -1, estimate.shape[-1])
    total = torch.zeros((), device=estimate.device)
    for window_length in window_lengths:
        # scipy's periodic Hann window, as DAC's: computed in float64 and rounded once.
        window = torch.hann_window(window_length, dtype=torch.float64).float().to(estimate.device)
        spectrum = torch.stft(
            both.reshape(-1, both.shape[-1]),
            n_fft=window_length,
            hop_length=window_length // 4,
            window=window,
            center=True,
            pad_mode="reflect",
            return_complex=True,
        ).abs()
        magnitude = spectrum.reshape(2, -1, *spectrum.shape[-2:])
        log_power = magnitude.clamp(min=clamp_eps).pow(power).log10()
        total = total + (log_power[0] - log_power[1]).abs().mean() + (magnitude[0] - magnitude[1]).abs().mean()
    return total
