"""Librosa's Slaney mel scale and filter bank (its `filters.mel` defaults), which DAC's mel loss and HiFi-GAN's and
BigVGAN's log-mel front-end use."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def hz_to_slaney_mel(hz: Tensor) -> Tensor:
    """Slaney's mel scale (librosa's default, `htk=False`): linear below 1 kHz (15 mels), logarithmic above."""
    logarithmic = 15.0 + torch.log(hz.clamp(min=1000.0) / 1000.0) / (math.log(6.4) / 27.0)
    return torch.where(hz >= 1000.0, logarithmic, 3.0 * hz / 200.0)


def slaney_mel_to_hz(mels: Tensor) -> Tensor:
    """The inverse of `hz_to_slaney_mel`."""
    logarithmic = 1000.0 * torch.exp((math.log(6.4) / 27.0) * (mels.clamp(min=15.0) - 15.0))
    return torch.where(mels >= 15.0, logarithmic, 200.0 * mels / 3.0)


def slaney_mel_filters(
    sample_rate: int, n_fft: int, n_mels: int, f_min: float = 0.0, f_max: float | None = None
) -> Tensor:
    """Triangular mel filters with Slaney's scale and area normalisation (librosa's `filters.mel` defaults, which
    DAC's mel loss uses), computed in float64 and rounded to float32 as librosa does: equal to its filters.

    Shapes: `-> [n_fft // 2 + 1 frequencies, n_mels]`, as torchaudio's `MelScale.fb`.
    """
    f_max = sample_rate / 2 if f_max is None else f_max
    frequencies = torch.arange(n_fft // 2 + 1, dtype=torch.float64) * sample_rate / n_fft
    edges = torch.tensor([f_min, f_max], dtype=torch.float64)
    low, high = hz_to_slaney_mel(edges).tolist()
    corners = slaney_mel_to_hz(torch.linspace(low, high, n_mels + 2, dtype=torch.float64))
    widths = corners.diff()
    rising = (frequencies[:, None] - corners[None, :-2]) / widths[:-1]
    falling = (corners[None, 2:] - frequencies[:, None]) / widths[1:]
    # Rounded as librosa rounds them: the triangles to float32, then their area-normalised values.
    triangles = torch.minimum(rising, falling).clamp(min=0.0).float().double()
    return (triangles * (2.0 / (corners[2:] - corners[:-2]))).float()
