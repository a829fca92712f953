"""Vocos's multi-period discriminator: HiFi-GAN's layers, as `PeriodDiscriminator`'s, with Vocos's forward.

Vocos 0.1.0 (`vocos.discriminators.MultiPeriodDiscriminator`) has DAC's and HiFi-GAN's layers (41,105,770
parameters with the default periods) but differs from `codecgan.models.discriminators.MultiPeriodDiscriminator`
in its forward:
- no DC removal or peak normalisation of the input;
- a waveform is reflect-padded to a multiple of the period only when it is not one already (HiFi-GAN's rule; DAC
  pads a whole period then);
- the first conv's output is not among the feature maps: each sub-discriminator returns 4 maps then the logits, so
  Vocos's feature matching sees 5 terms per period (`codecgan.losses.vocos_losses`). HiFi-GAN returns all 5 maps.
The optional bandwidth-embedding conditioning of Vocos's EnCodec-token model is left out.
"""

from __future__ import annotations

from typing import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from codecgan.models.discriminators import LEAKY_RELU_SLOPE, PeriodDiscriminator

VOCOS_PERIODS = (2, 3, 5, 7, 11)


class VocosPeriodDiscriminator(PeriodDiscriminator):
    """`PeriodDiscriminator`'s layers; padding only when needed and no first-layer feature map.

    Shapes: `[B, 1, T] -> [fmap_2, ..., fmap_5, logits [B, 1, ~T / (period * 81), period]]`.
    """

    def forward(self, audio: Tensor) -> list[Tensor]:
        remainder = audio.shape[-1] % self.period
        x = F.pad(audio, (0, self.period - remainder), mode="reflect") if remainder else audio
        x = x.view(x.shape[0], x.shape[1], -1, self.period)
        features = []
        for index, conv in enumerate(self.convs):
            x = F.leaky_relu(conv(x), LEAKY_RELU_SLOPE)
            if index > 0:
                features.append(x)
        features.append(self.conv_post(x))
        return features


class VocosMultiPeriodDiscriminator(nn.Module):
    """One `VocosPeriodDiscriminator` per period.

    Args:
        periods: folding periods in samples.
        channels: conv channels of every period discriminator (HiFi-GAN's by default).

    Shapes: `audio: [B, 1, T]` -> one feature list per period (docs/interfaces.md).
    """

    def __init__(
        self, periods: Sequence[int] = VOCOS_PERIODS, channels: Sequence[int] = (32, 128, 512, 1024, 1024)
    ) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(VocosPeriodDiscriminator(p, channels) for p in periods)

    def forward(self, audio: Tensor) -> list[list[Tensor]]:
        return [discriminator(audio) for discriminator in self.discriminators]
