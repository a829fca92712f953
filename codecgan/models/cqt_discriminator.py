"""BigVGAN-v2's multi-scale sub-band constant-Q discriminator (CQT-D, `bigvgan` 2.4.1
`MultiScaleSubbandCQTDiscriminator`), the MPD's partner in the released v2 configs.

Each sub-discriminator resamples the waveform to twice its rate, takes a complex CQT (`constant_q`), gives every
octave its own (3, 9) conv over the (real, imaginary) planes, and runs the concatenated octaves through dilated
strided convs. As in BigVGAN, its feature maps exclude the logits: the output list is BigVGAN's `fmap` with the logit
map appended, so the feature-matching term must leave the last map out (`vocoder_feature_loss(...,
include_logits=False)`). The per-octave convs and the first conv carry no weight norm, as in BigVGAN. With the
released v2 settings it has 4,454,304 parameters.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm
from torchaudio.transforms import Resample

from codecgan.models.constant_q import ConstantQTransform
from codecgan.models.discriminators import LEAKY_RELU_SLOPE, remove_dc_and_normalize_peak


def _same_padding(kernel: tuple[int, int], dilation: tuple[int, int] = (1, 1)) -> tuple[int, int]:
    return ((kernel[0] - 1) * dilation[0]) // 2, ((kernel[1] - 1) * dilation[1]) // 2


class CQTDiscriminator(nn.Module):
    """BigVGAN's `DiscriminatorCQT` for one (hop, octaves, bins per octave).

    Args:
        sample_rate: Hz of the waveform (the CQT runs at twice this rate).
        hop_length: CQT hop at twice the rate, in samples.
        octaves: octaves of the CQT (from 32.70 Hz).
        bins_per_octave: CQT bins per octave.
        filters, max_filters, filters_scale: channels of the convs (`cqtd_filters`, ...; 128, 1024, 1 in v2).
        dilations: time dilations of the strided convs.
        normalize_volume: remove DC and normalise the peak first (`cqtd_normalize_volume`).

    Shapes: `[B, 1, T] -> [len(dilations) + 2 fmaps, logits [B, 1, frames, ~bins / 2**len(dilations)]]`.
    """

    def __init__(
        self,
        sample_rate: int,
        hop_length: int,
        octaves: int,
        bins_per_octave: int,
        filters: int = 32,
        max_filters: int = 1024,
        filters_scale: int = 1,
        dilations: Sequence[int] = (1, 2, 4),
        normalize_volume: bool = False,
    ) -> None:
        super().__init__()
        self.octaves, self.bins_per_octave = octaves, bins_per_octave
        self.normalize_volume = normalize_volume
        kernel = (3, 9)
        self.cqt_transform = ConstantQTransform(sample_rate * 2, hop_length, bins_per_octave * octaves, bins_per_octave)
        self.conv_pres = nn.ModuleList(nn.Conv2d(2, 2, kernel, padding=_same_padding(kernel)) for _ in range(octaves))
        convs = [nn.Conv2d(2, filters, kernel, padding=_same_padding(kernel))]
        in_channels = min(filters_scale * filters, max_filters)
        for index, dilation in enumerate(dilations):
            out_channels = min(filters_scale ** (index + 1) * filters, max_filters)
            conv = nn.Conv2d(
                in_channels,
                out_channels,
                kernel,
                stride=(1, 2),
                dilation=(dilation, 1),
                padding=_same_padding(kernel, (dilation, 1)),
            )
            convs.append(weight_norm(conv))
            in_channels = out_channels
        out_channels = min(filters_scale ** (len(dilations) + 1) * filters, max_filters)
        convs.append(weight_norm(nn.Conv2d(in_channels, out_channels, (3, 3), padding=(1, 1))))
        self.convs = nn.ModuleList(convs)
        self.conv_post = weight_norm(nn.Conv2d(out_channels, 1, (3, 3), padding=(1, 1)))
        self.resample = Resample(orig_freq=sample_rate, new_freq=sample_rate * 2)

    def forward(self, audio: Tensor) -> list[Tensor]:
        if self.normalize_volume:
            audio = remove_dc_and_normalize_peak(audio)
        spectrum = self.cqt_transform(self.resample(audio))  # [B, bins, frames, 2]
        x = spectrum.permute(0, 3, 2, 1)  # [B, 2 (re, im), frames, bins]
        width = self.bins_per_octave
        x = torch.cat([conv(x[..., i * width : (i + 1) * width]) for i, conv in enumerate(self.conv_pres)], dim=-1)
        features = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LEAKY_RELU_SLOPE)
            features.append(x)
        features.append(self.conv_post(x))
        return features


class MultiScaleSubbandCQTDiscriminator(nn.Module):
    """BigVGAN-v2's CQT-D: one `CQTDiscriminator` per (hop, octaves, bins per octave).

    The defaults are the released v2 configs' (`cqtd_filters` 128, hops 512, 256, 256, 9 octaves, 24, 36 and 48
    bins per octave); `sample_rate` must be given.
    """

    def __init__(
        self,
        sample_rate: int,
        hop_lengths: Sequence[int] = (512, 256, 256),
        octaves: Sequence[int] = (9, 9, 9),
        bins_per_octave: Sequence[int] = (24, 36, 48),
        filters: int = 128,
        max_filters: int = 1024,
        filters_scale: int = 1,
        dilations: Sequence[int] = (1, 2, 4),
        normalize_volume: bool = False,
    ) -> None:
        super().__init__()
        if not len(hop_lengths) == len(octaves) == len(bins_per_octave):
            raise ValueError(
                f"hop_lengths {list(hop_lengths)}, octaves {list(octaves)} and bins_per_octave "
                f"{list(bins_per_octave)} need one entry per sub-discriminator each."
            )
        self.discriminators = nn.ModuleList(
            CQTDiscriminator(
                sample_rate, hop, n, bins, filters, max_filters, filters_scale, dilations, normalize_volume
            )
            for hop, n, bins in zip(hop_lengths, octaves, bins_per_octave)
        )

    def forward(self, audio: Tensor) -> list[list[Tensor]]:
        """`audio: [B, 1, T]` -> one feature list per sub-discriminator."""
        return [discriminator(audio) for discriminator in self.discriminators]
