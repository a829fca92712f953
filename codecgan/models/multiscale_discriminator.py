"""MelGAN's multi-scale waveform discriminator (also DAC's unused MSD): grouped strided convs.

Output convention as in `discriminators.py`: one feature list per scale, logits last.
"""

from __future__ import annotations

from typing import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from codecgan.models.conv_blocks import weight_norm_conv1d
from codecgan.models.discriminators import LEAKY_RELU_SLOPE, remove_dc_and_normalize_peak


class ScaleDiscriminator(nn.Module):
    """A waveform discriminator: k15 conv, grouped k41 stride-4 convs, a k5 conv, a k3 logit conv.

    Grouped convs give a wide receptive field (41 taps, x4 per layer) at a fraction of the
    parameters of dense ones. With the defaults it has 5,641,362 parameters.

    Args:
        channels: output channels of the k15 conv, then of each grouped conv; the k5 conv keeps
            the last. Needs `len(groups) + 1` entries.
        groups: groups of each grouped conv; each must divide its input and output channels.

    Shapes: `[B, 1, T] -> [fmap_1, ..., logits [B, 1, ~T / 4**len(groups)]]`.
    """

    def __init__(
        self,
        channels: Sequence[int] = (16, 64, 256, 1024, 1024),
        groups: Sequence[int] = (4, 16, 64, 256),
    ) -> None:
        super().__init__()
        if len(channels) != len(groups) + 1:
            raise ValueError(f"channels needs len(groups) + 1 = {len(groups) + 1} entries, got {list(channels)}.")
        for c_in, c_out, group in zip(channels[:-1], channels[1:], groups):
            if c_in % group or c_out % group:
                raise ValueError(
                    f"groups={group} must divide both channels {c_in} -> {c_out}; "
                    f"got channels {list(channels)} and groups {list(groups)}."
                )
        layers = [weight_norm_conv1d(1, channels[0], 15, padding=7)]
        layers += [
            weight_norm_conv1d(c_in, c_out, 41, stride=4, padding=20, groups=group)
            for c_in, c_out, group in zip(channels[:-1], channels[1:], groups)
        ]
        layers.append(weight_norm_conv1d(channels[-1], channels[-1], 5, padding=2))
        self.convs = nn.ModuleList(layers)
        self.conv_post = weight_norm_conv1d(channels[-1], 1, 3, padding=1)

    def forward(self, audio: Tensor) -> list[Tensor]:
        x = audio
        features = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LEAKY_RELU_SLOPE)
            features.append(x)
        features.append(self.conv_post(x))
        return features


class MultiScaleDiscriminator(nn.Module):
    """`scales` copies of `ScaleDiscriminator`, the k-th seeing the audio average-pooled k times.

    Each pooling halves the rate (kernel 4, stride 2, edges not diluted by the zero padding), so
    the later scales judge the coarse, low-frequency structure.

    Args:
        scales: number of scale discriminators.
        groups: groups of the grouped convs (see `ScaleDiscriminator`).
        channels: conv channels (see `ScaleDiscriminator`).
        normalize_input: apply DAC's `remove_dc_and_normalize_peak` first (MelGAN does not).
    """

    def __init__(
        self,
        scales: int = 3,
        groups: Sequence[int] = (4, 16, 64, 256),
        channels: Sequence[int] = (16, 64, 256, 1024, 1024),
        normalize_input: bool = False,
    ) -> None:
        super().__init__()
        if scales < 1:
            raise ValueError(f"scales must be at least 1, got {scales}.")
        self.normalize_input = normalize_input
        self.discriminators = nn.ModuleList(ScaleDiscriminator(channels, groups) for _ in range(scales))
        self.downsample = nn.AvgPool1d(4, stride=2, padding=1, count_include_pad=False)

    def forward(self, audio: Tensor) -> list[list[Tensor]]:
        """`audio: [B, 1, T]` -> one feature list per scale, finest first."""
        if self.normalize_input:
            audio = remove_dc_and_normalize_peak(audio)
        outputs = []
        for index, discriminator in enumerate(self.discriminators):
            if index > 0:
                audio = self.downsample(audio)
            outputs.append(discriminator(audio))
        return outputs
