"""DAC's multi-scale log-mel L1 loss (7 scales from 32- to 2048-sample windows by default)."""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchaudio.transforms import MelSpectrogram

from codecgan.models.precision import at_least_float32


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


class MultiScaleMelLoss(nn.Module):
    """Σ_scales L1(log10(clamp(mel(estimate), eps)^power), log10(clamp(mel(reference), eps)^power))
                + magnitude_weight * L1(mel(estimate), mel(reference))

    Summed over scales, not averaged, as in DAC (so its weight, 15 in DAC, applies per scale).
    Each scale is a magnitude (not power) mel spectrogram with a periodic Hann window, hop
    `window // 4`, centred reflect padding and librosa's default Slaney mel filters. Short windows
    resolve transients, long ones harmonics. Computed in fp32 (float64 in a float64 model) with
    autocast disabled, since log10 of bf16 magnitudes near `clamp_eps` is too coarse to compare.

    Args:
        sample_rate: Hz.
        window_lengths: STFT window and FFT sizes in samples, one per scale.
        n_mels: mel bands per scale.
        clamp_eps: floor on the mel magnitude before the log (-100 dB re 1).
        power: exponent applied to the clamped mel magnitude before the log (DAC's `pow`).
        magnitude_weight: weight of the L1 distance of the linear mel magnitudes (DAC's `mag_weight`, 0 there).
            The log term weighs every mel band alike and, while the model cannot yet place the harmonics, is
            lowest for an output quieter than the reference; the linear term is dominated by the loudest bands
            and pulls the level up to the reference's.

    Shapes: `estimate, reference: [B, 1, T]` -> scalar.
    """

    def __init__(
        self,
        sample_rate: int,
        window_lengths: Sequence[int] = (32, 64, 128, 256, 512, 1024, 2048),
        n_mels: Sequence[int] = (5, 10, 20, 40, 80, 160, 320),
        clamp_eps: float = 1e-5,
        power: float = 1.0,
        magnitude_weight: float = 0.0,
    ) -> None:
        super().__init__()
        if len(window_lengths) != len(n_mels):
            raise ValueError(
                f"window_lengths ({len(window_lengths)} scales) and n_mels ({len(n_mels)} scales) "
                "must have the same length."
            )
        if magnitude_weight < 0:
            raise ValueError(f"magnitude_weight must be >= 0, got {magnitude_weight}.")
        self.clamp_eps = clamp_eps
        self.power = power
        self.magnitude_weight = magnitude_weight
        self.spectrograms = nn.ModuleList(
            MelSpectrogram(
                sample_rate=sample_rate,
                n_fft=window,
                win_length=window,
                hop_length=window // 4,
                n_mels=mels,
                window_fn=torch.hann_window,
                power=1.0,
                center=True,
                pad_mode="reflect",
                norm="slaney",
                mel_scale="slaney",
            )
            for window, mels in zip(window_lengths, n_mels)
        )
        # DAC's filters (librosa's) and window (scipy's) are computed in float64 and rounded to float32; torchaudio
        # computes them in float32, which moves the filters by up to 1.5e-5 of their largest weight, the window by
        # an ulp.
        for spectrogram, window, mels in zip(self.spectrograms, window_lengths, n_mels):
            spectrogram.mel_scale.fb.copy_(slaney_mel_filters(sample_rate, window, mels))
            spectrogram.spectrogram.window.copy_(torch.hann_window(window, dtype=torch.float64))

    def forward(self, estimate: Tensor, reference: Tensor) -> Tensor:
        if estimate.shape != reference.shape:
            raise ValueError(
                f"estimate {tuple(estimate.shape)} and reference {tuple(reference.shape)} must have the same shape."
            )
        batch = estimate.shape[0]
        with torch.autocast(device_type=estimate.device.type, enabled=False):
            # One STFT per scale for both signals.
            both = at_least_float32(torch.cat([estimate, reference])).squeeze(1)
            terms = []  # summed in order, as DAC sums them, without a zero to start from
            for spectrogram in self.spectrograms:
                mel = spectrogram(both)
                log_mel = mel.clamp(min=self.clamp_eps)
                log_mel = (log_mel if self.power == 1.0 else log_mel.pow(self.power)).log10()
                terms.append(F.l1_loss(log_mel[:batch], log_mel[batch:]))
                if self.magnitude_weight:
                    terms.append(self.magnitude_weight * F.l1_loss(mel[:batch], mel[batch:]))
        return sum(terms[1:], terms[0])
