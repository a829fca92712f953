"""Vocos's multi-resolution discriminator: DAC's band-split complex-STFT layers with Vocos's STFT and forward.

Vocos 0.1.0 (`vocos.discriminators.MultiResolutionDiscriminator`, window lengths 2048, 1024, 512) is DAC's MRD
layer for layer (1,413,990 parameters), not UnivNet's magnitude MRD (which Vocos used before its 0.1.0 release).
It differs from `codecgan.models.discriminators.MultiResolutionSTFTDiscriminator` in
- the STFT: torchaudio's `Spectrogram` framing, centred with reflect padding, `T // hop + 1` frames (DAC's has
  `ceil(T / hop)`), with torch's float32 Hann window;
- the feature maps: each band stack's first conv output is left out, so a sub-discriminator returns 4 maps per band
  then the logits.
Each sub-discriminator removes the DC and normalises the peak itself, as DAC's does once for all.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from codecgan.models.discriminators import (
    DAC_BANDS,
    LEAKY_RELU_SLOPE,
    STFTBandDiscriminator,
    remove_dc_and_normalize_peak,
)
from codecgan.models.precision import at_least_float32

VOCOS_WINDOW_LENGTHS = (2048, 1024, 512)


class VocosSTFTBandDiscriminator(STFTBandDiscriminator):
    """`STFTBandDiscriminator`'s layers on a centred STFT, without the band stacks' first feature maps.

    Shapes: `[B, 1, T] -> [4 fmaps per band, logits [B, 1, T // hop + 1, Σ_band ceil(bins / 8)]]`.
    """

    def __init__(
        self,
        window_length: int,
        channels: int = 32,
        bands: Sequence[tuple[float, float]] = DAC_BANDS,
        hop_factor: float = 0.25,
    ) -> None:
        super().__init__(window_length, channels, bands, hop_factor)
        self.window = torch.hann_window(window_length)

    def complex_spectrogram(self, audio: Tensor) -> Tensor:
        """`[B, 1, T] -> [B, 2 (Re, Im), T // hop + 1 frames, window_length // 2 + 1 bins]`."""
        with torch.autocast(device_type=audio.device.type, enabled=False):
            spectrum = torch.stft(
                at_least_float32(audio).squeeze(1),
                n_fft=self.window_length,
                hop_length=self.hop_length,
                window=at_least_float32(self.window),
                center=True,
                pad_mode="reflect",
                return_complex=True,
            )
        return torch.view_as_real(spectrum).permute(0, 3, 2, 1)

    def forward(self, audio: Tensor) -> list[Tensor]:
        spectrum = self.complex_spectrogram(remove_dc_and_normalize_peak(audio))
        features, band_outputs = [], []
        for x, stack in zip(self.bands_of(spectrum), self.band_stacks):
            for index, conv in enumerate(stack):
                x = F.leaky_relu(conv(x), LEAKY_RELU_SLOPE)
                if index > 0:
                    features.append(x)
            band_outputs.append(x)
        features.append(self.conv_post(torch.cat(band_outputs, dim=-1)))
        return features


class VocosMultiResolutionDiscriminator(nn.Module):
    """One `VocosSTFTBandDiscriminator` per window length.

    Args:
        window_lengths: STFT sizes in samples (Vocos's `fft_sizes`); T must exceed `max(window_lengths) // 2`.
        channels: conv channels of every band stack.
        bands: band edges as fractions of the bins.
        hop_factor: hop as a fraction of the window.

    Shapes: `audio: [B, 1, T]` -> one feature list per window length (docs/interfaces.md).
    """

    def __init__(
        self,
        window_lengths: Sequence[int] = VOCOS_WINDOW_LENGTHS,
        channels: int = 32,
        bands: Sequence[tuple[float, float]] = DAC_BANDS,
        hop_factor: float = 0.25,
    ) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(
            VocosSTFTBandDiscriminator(w, channels, bands, hop_factor) for w in window_lengths
        )

    def forward(self, audio: Tensor) -> list[list[Tensor]]:
        return [discriminator(audio) for discriminator in self.discriminators]
