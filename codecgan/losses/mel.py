"""DAC's multi-scale log-mel L1 loss (7 scales from 32- to 2048-sample windows by default)."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchaudio.transforms import MelSpectrogram

from codecgan.models.precision import at_least_float32
from codecgan.models.slaney_mel import slaney_mel_filters


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
