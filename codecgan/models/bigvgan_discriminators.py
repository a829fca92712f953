"""BigVGAN's discriminators (`bigvgan` 2.4.1): its multi-period (MPD), multi-band (MBD) and v1 multi-resolution
(MRD) sets.

Every set maps `[B, 1, T]` to `list[list[Tensor]]`: per sub-discriminator, exactly BigVGAN's `fmap` list, whose
last entry is the logit map (BigVGAN's feature loss includes it). Layer names follow BigVGAN's, so
`bigvgan_generator.from_bigvgan_state_dict` maps its discriminator state dicts onto these.

- MPD: the codec's `PeriodDiscriminator` layers (the same 1-32-128-512-1024-1024 (5, 1) stride-3 layout as
  HiFi-GAN's and DAC's, 8,221,154 parameters each, 41,105,770 for five periods), but the waveform is padded only
  when T is not a multiple of the period, and not normalised.
- MBD (`use_mbd_instead_of_mrd`): the codec's `STFTBandDiscriminator` layers (DAC's), but each sub-discriminator
  normalises its own input, the STFT is torchaudio's centred one (T // hop + 1 frames, torch's float32 Hann
  window), and the first conv of each band is left out of the feature maps. 1,413,990 parameters.
- MRD (BigVGAN v1's UnivNet-style `DiscriminatorR`): one magnitude spectrogram per resolution.
- BigVGAN-v2's released configs pair the MPD with the multi-scale sub-band CQT discriminator instead:
  `cqt_discriminator.MultiScaleSubbandCQTDiscriminator`.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm, weight_norm

from codecgan.models.discriminators import (
    LEAKY_RELU_SLOPE,
    PeriodDiscriminator,
)
from codecgan.models.vocos_mrd import VocosSTFTBandDiscriminator

HIFIGAN_PERIOD_CHANNELS = (32, 128, 512, 1024, 1024)
BIGVGAN_V1_RESOLUTIONS = ((1024, 120, 600), (2048, 240, 1200), (512, 50, 240))  # (n_fft, hop, window), 24 kHz


class HiFiGANPeriodDiscriminator(PeriodDiscriminator):
    """HiFi-GAN's and BigVGAN's `DiscriminatorP`: reflect-pads to a multiple of the period only when needed.

    Shapes: `[B, 1, T] -> [fmap_1, ..., fmap_5, logits [B, 1, frames, period]]`.
    """

    def forward(self, audio: Tensor) -> list[Tensor]:
        remainder = audio.shape[-1] % self.period
        x = F.pad(audio, (0, self.period - remainder), mode="reflect") if remainder else audio
        x = x.view(x.shape[0], x.shape[1], -1, self.period)
        features = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LEAKY_RELU_SLOPE)
            features.append(x)
        features.append(self.conv_post(x))
        return features


class HiFiGANMultiPeriodDiscriminator(nn.Module):
    """HiFi-GAN's and BigVGAN's MPD: one `HiFiGANPeriodDiscriminator` per period, on the raw waveform.

    Args:
        periods: BigVGAN's `mpd_reshapes`.
        channel_mult: BigVGAN's `discriminator_channel_mult`, scaling every conv's channels.
    """

    def __init__(self, periods: Sequence[int] = (2, 3, 5, 7, 11), channel_mult: float = 1.0) -> None:
        super().__init__()
        channels = [int(c * channel_mult) for c in HIFIGAN_PERIOD_CHANNELS]
        self.discriminators = nn.ModuleList(HiFiGANPeriodDiscriminator(p, channels) for p in periods)

    def forward(self, audio: Tensor) -> list[list[Tensor]]:
        """`audio: [B, 1, T]` -> one feature list per period."""
        return [discriminator(audio) for discriminator in self.discriminators]


# BigVGAN's `DiscriminatorB` is Vocos's band discriminator layer for layer: DAC's band stacks on torchaudio's centred
# complex STFT of the normalised input, without the stacks' first feature maps.
BigVGANBandDiscriminator = VocosSTFTBandDiscriminator


class BigVGANMultiBandDiscriminator(nn.Module):
    """BigVGAN's MBD: one `BigVGANBandDiscriminator` per FFT size (`mbd_fft_sizes`)."""

    def __init__(self, fft_sizes: Sequence[int] = (2048, 1024, 512)) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(BigVGANBandDiscriminator(w) for w in fft_sizes)

    def forward(self, audio: Tensor) -> list[list[Tensor]]:
        """`audio: [B, 1, T]` -> one feature list per FFT size."""
        return [discriminator(audio) for discriminator in self.discriminators]


class ResolutionDiscriminator(nn.Module):
    """BigVGAN v1's `DiscriminatorR`: (3, 9) convs over one linear-magnitude spectrogram `[B, 1, frames, bins]`.

    The STFT is reflect-padded by `(n_fft - hop) / 2` per side, uncentred, with a rectangular window of
    `win_length` samples.

    Args:
        resolution: (n_fft, hop_length, win_length) in samples.
        channel_mult: scales the 32 channels.
        use_spectral_norm: spectral instead of weight norm.
    """

    def __init__(self, resolution: Sequence[int], channel_mult: float = 1.0, use_spectral_norm: bool = False) -> None:
        super().__init__()
        if len(resolution) != 3:
            raise ValueError(f"resolution must be (n_fft, hop_length, win_length); got {list(resolution)}.")
        self.resolution = tuple(resolution)
        norm = spectral_norm if use_spectral_norm else weight_norm
        ch = int(32 * channel_mult)
        self.convs = nn.ModuleList(
            [
                norm(nn.Conv2d(1, ch, (3, 9), padding=(1, 4))),
                *(norm(nn.Conv2d(ch, ch, (3, 9), stride=(1, 2), padding=(1, 4))) for _ in range(3)),
                norm(nn.Conv2d(ch, ch, (3, 3), padding=(1, 1))),
            ]
        )
        self.conv_post = norm(nn.Conv2d(ch, 1, (3, 3), padding=(1, 1)))

    def magnitude(self, audio: Tensor) -> Tensor:
        """`[B, 1, T] -> [B, n_fft // 2 + 1, frames]`."""
        n_fft, hop, window = self.resolution
        side = int((n_fft - hop) / 2)
        x = F.pad(audio, (side, side), mode="reflect").squeeze(1)
        spectrum = torch.stft(x, n_fft=n_fft, hop_length=hop, win_length=window, center=False, return_complex=True)
        return torch.linalg.vector_norm(torch.view_as_real(spectrum), dim=-1)

    def forward(self, audio: Tensor) -> list[Tensor]:
        x = self.magnitude(audio).unsqueeze(1)
        features = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LEAKY_RELU_SLOPE)
            features.append(x)
        features.append(self.conv_post(x))
        return features


class BigVGANMultiResolutionDiscriminator(nn.Module):
    """BigVGAN v1's MRD: one `ResolutionDiscriminator` per (n_fft, hop_length, win_length)."""

    def __init__(
        self,
        resolutions: Sequence[Sequence[int]] = BIGVGAN_V1_RESOLUTIONS,
        channel_mult: float = 1.0,
        use_spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(
            ResolutionDiscriminator(r, channel_mult, use_spectral_norm) for r in resolutions
        )

    def forward(self, audio: Tensor) -> list[list[Tensor]]:
        """`audio: [B, 1, T]` -> one feature list per resolution."""
        return [discriminator(audio) for discriminator in self.discriminators]
