"""HiFi-GAN's multi-scale discriminator (MSD, jik876/hifi-gan `models.py::MultiScaleDiscriminator`).

HiFi-GAN's multi-period discriminator is `bigvgan_discriminators.HiFiGANMultiPeriodDiscriminator` (BigVGAN's MPD
is HiFi-GAN's with a channel multiplier). The MSD's layout differs from MelGAN's `ScaleDiscriminator` (channels
1-128-128-256-512-1024-1024-1024, strides 1, 2, 2, 4, 4, 1, 1, groups 1, 4, 16, 16, 16, 16, 1; pooling
`AvgPool1d(4, 2, padding=2)` counting the zero padding), so it is a class of its own. The first scale is
spectral-normed, the others weight-normed. With the defaults the MSD has 29,618,821 parameters (spectral norm's
`weight_orig` counted, its power-iteration vectors not: they are buffers).

Output as every codecgan discriminator: per scale, HiFi-GAN's `fmap` list, whose last entry is the logit map.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm, weight_norm

from codecgan.models.discriminators import LEAKY_RELU_SLOPE

# (in, out, kernel, stride, groups) of HiFi-GAN's DiscriminatorS.
SCALE_LAYERS = (
    (1, 128, 15, 1, 1),
    (128, 128, 41, 2, 4),
    (128, 256, 41, 2, 16),
    (256, 512, 41, 4, 16),
    (512, 1024, 41, 4, 16),
    (1024, 1024, 41, 1, 16),
    (1024, 1024, 5, 1, 1),
)


def average_pool(audio: Tensor) -> Tensor:
    """HiFi-GAN's MSD downsampling: `AvgPool1d(4, 2, padding=2)`, the zero padding counted in the edge means.

    Shapes: `[B, 1, T] -> [B, 1, T // 2 + 1]`.
    """
    return F.avg_pool1d(audio, 4, 2, padding=2)


class HiFiGANScaleDiscriminator(nn.Module):
    """HiFi-GAN's `DiscriminatorS`: strided grouped convs on the waveform, LeakyReLU 0.1, a k3 logit conv.

    Args:
        use_spectral_norm: spectral norm (HiFi-GAN's first scale) instead of weight norm.

    Shapes: `[B, 1, T] -> [7 fmaps, logits [B, 1, ~T / 64]]`.
    """

    def __init__(self, use_spectral_norm: bool = False) -> None:
        super().__init__()
        norm = spectral_norm if use_spectral_norm else weight_norm
        self.convs = nn.ModuleList(
            norm(nn.Conv1d(c_in, c_out, kernel, stride, padding=(kernel - 1) // 2, groups=groups))
            for c_in, c_out, kernel, stride, groups in SCALE_LAYERS
        )
        self.conv_post = norm(nn.Conv1d(1024, 1, 3, padding=1))

    def forward(self, audio: Tensor) -> list[Tensor]:
        x = audio
        features = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LEAKY_RELU_SLOPE)
            features.append(x)
        features.append(self.conv_post(x))
        return features


class HiFiGANMultiScaleDiscriminator(nn.Module):
    """HiFi-GAN's MSD: `scales` `HiFiGANScaleDiscriminator`s, the first spectral-normed, the k-th seeing the
    waveform average-pooled k times (kernel 4, stride 2, zero padding 2 counted in the mean).

    Args:
        scales: number of scales (3 in HiFi-GAN).
    """

    def __init__(self, scales: int = 3) -> None:
        super().__init__()
        if scales < 1:
            raise ValueError(f"scales must be at least 1, got {scales}.")
        self.discriminators = nn.ModuleList(HiFiGANScaleDiscriminator(index == 0) for index in range(scales))

    def forward(self, audio: Tensor) -> list[list[Tensor]]:
        """`audio: [B, 1, T]` -> one feature list per scale, finest first."""
        outputs = []
        for index, discriminator in enumerate(self.discriminators):
            if index > 0:
                audio = average_pool(audio)
            outputs.append(discriminator(audio))
        return outputs
