"""HiFi-GAN's generator (jik876/hifi-gan, `models.py::Generator`): log-mel `[B, n_mels, frames]` -> `[B, 1, T]`.

A k7 conv, then per stage LeakyReLU(0.1), a transposed-conv upsampler and parallel multi-receptive-field residual
blocks whose outputs are averaged, then LeakyReLU with PyTorch's default slope 0.01 (not 0.1: HiFi-GAN calls
`F.leaky_relu(x)` there), a k7 conv and tanh. V1, V2 and V3 differ only in the arguments (`HIFIGAN_V1` ...).
Layer names follow HiFi-GAN's, so `from_hifigan_state_dict` maps a `g_XXXXXXXX` checkpoint's `generator` by renaming
weight norm's tensors only. Parameter counts (weight norm's gains included): V1 13,936,130, V2 928,514, V3 1,464,322.
"""

from __future__ import annotations

import re
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from codecgan.models.bigvgan_generator import check_layout, same_padding, upsampling_convs
from codecgan.models.conv_blocks import draw_like_reference_init, weight_norm_conv1d
from codecgan.models.discriminators import LEAKY_RELU_SLOPE

HIFIGAN_V1 = dict(
    upsample_rates=(8, 8, 2, 2),
    upsample_kernel_sizes=(16, 16, 4, 4),
    upsample_initial_channel=512,
    resblock_kernel_sizes=(3, 7, 11),
    resblock_dilation_sizes=((1, 3, 5), (1, 3, 5), (1, 3, 5)),
    resblock=1,
)
HIFIGAN_V2 = {**HIFIGAN_V1, "upsample_initial_channel": 128}
HIFIGAN_V3 = dict(
    upsample_rates=(8, 8, 4),
    upsample_kernel_sizes=(16, 16, 8),
    upsample_initial_channel=256,
    resblock_kernel_sizes=(3, 5, 7),
    resblock_dilation_sizes=((1, 2), (2, 6), (3, 12)),
    resblock=2,
)


class MultiReceptiveFieldBlock(nn.Module):
    """HiFi-GAN's ResBlock1 (per dilation d: `x + conv(lrelu(conv_d(lrelu(x))))`) or, with `second_convs=False`,
    ResBlock2 (`x + conv_d(lrelu(x))`).

    Args:
        channels: C.
        kernel_size: conv kernel in samples.
        dilations: one residual unit per dilation (three for ResBlock1, two for ResBlock2 in HiFi-GAN).
        second_convs: ResBlock1 (True) or ResBlock2 (False).

    Shapes: `[B, C, T] -> [B, C, T]`.
    """

    def __init__(
        self, channels: int, kernel_size: int = 3, dilations: Sequence[int] = (1, 3, 5), second_convs: bool = True
    ) -> None:
        super().__init__()
        dilated = nn.ModuleList(
            weight_norm_conv1d(channels, channels, kernel_size, dilation=d, padding=same_padding(kernel_size, d))
            for d in dilations
        )
        # HiFi-GAN's `self.convs1.apply(init_weights)` (ResBlock2: `self.convs.apply(init_weights)`): see
        # `draw_like_reference_init`; a seeded build then has HiFi-GAN's initial weights.
        draw_like_reference_init(dilated)
        self.second_convs = second_convs
        if second_convs:
            self.convs1 = dilated
            self.convs2 = nn.ModuleList(
                weight_norm_conv1d(channels, channels, kernel_size, padding=same_padding(kernel_size))
                for _ in dilations
            )
            draw_like_reference_init(self.convs2)  # `self.convs2.apply(init_weights)`
        else:
            self.convs = dilated

    def forward(self, x: Tensor) -> Tensor:
        if not self.second_convs:
            for conv in self.convs:
                x = conv(F.leaky_relu(x, LEAKY_RELU_SLOPE)) + x
            return x
        for conv1, conv2 in zip(self.convs1, self.convs2):
            x = conv2(F.leaky_relu(conv1(F.leaky_relu(x, LEAKY_RELU_SLOPE)), LEAKY_RELU_SLOPE)) + x
        return x


class HiFiGANGenerator(nn.Module):
    """HiFi-GAN's generator; the defaults are V1 (`config_v1.json`).

    Args:
        num_mels: mel bands of the input (80 in HiFi-GAN, where it is fixed).
        upsample_rates: per stage; their product is the hop length (256 in V1-V3).
        upsample_kernel_sizes: transposed-conv kernels, one per stage.
        upsample_initial_channel: channels after the first conv, halved at every stage.
        resblock_kernel_sizes: one residual block per kernel size in every stage, outputs averaged.
        resblock_dilation_sizes: the dilations of each of those blocks.
        resblock: 1 (ResBlock1, V1 and V2) or 2 (ResBlock2, V3).

    Shapes: `mel: [B, num_mels, frames] -> [B, 1, frames * prod(upsample_rates)]`, in (-1, 1).
    """

    def __init__(
        self,
        num_mels: int = 80,
        upsample_rates: Sequence[int] = (8, 8, 2, 2),
        upsample_kernel_sizes: Sequence[int] = (16, 16, 4, 4),
        upsample_initial_channel: int = 512,
        resblock_kernel_sizes: Sequence[int] = (3, 7, 11),
        resblock_dilation_sizes: Sequence[Sequence[int]] = ((1, 3, 5), (1, 3, 5), (1, 3, 5)),
        resblock: int = 1,
    ) -> None:
        super().__init__()
        check_layout(upsample_rates, upsample_kernel_sizes, resblock_kernel_sizes, resblock_dilation_sizes, resblock)
        self.num_kernels = len(resblock_kernel_sizes)
        self.conv_pre = weight_norm_conv1d(num_mels, upsample_initial_channel, 7, padding=3)
        self.ups, channels = upsampling_convs(upsample_initial_channel, upsample_rates, upsample_kernel_sizes)
        self.resblocks = nn.ModuleList(
            MultiReceptiveFieldBlock(ch, kernel, dilations, second_convs=resblock == 1)
            for ch in channels
            for kernel, dilations in zip(resblock_kernel_sizes, resblock_dilation_sizes)
        )
        self.conv_post = weight_norm_conv1d(channels[-1], 1, 7, padding=3)
        # `self.ups.apply(init_weights)`, `self.conv_post.apply(init_weights)`: no parameter changes, but the
        # draws keep the RNG where HiFi-GAN's leaves it (its train.py builds the discriminators next).
        draw_like_reference_init([*self.ups, self.conv_post])

    def forward(self, mel: Tensor) -> Tensor:
        x = self.conv_pre(mel)
        for stage, upsample in enumerate(self.ups):
            x = upsample(F.leaky_relu(x, LEAKY_RELU_SLOPE))
            blocks = self.resblocks[stage * self.num_kernels : (stage + 1) * self.num_kernels]
            total = blocks[0](x)
            for block in blocks[1:]:
                total = total + block(x)
            x = total / self.num_kernels
        return torch.tanh(self.conv_post(F.leaky_relu(x)))  # slope 0.01, as HiFi-GAN


# HiFi-GAN's checkpoints use torch.nn.utils.weight_norm (weight_g, weight_v) and spectral_norm (weight_orig and the
# buffers weight_u, weight_v of its power iteration).
_HIFIGAN_KEYS = (
    (r"\.weight_g$", ".parametrizations.weight.original0"),
    (r"\.weight_v$", ".parametrizations.weight.original1"),
)
_HIFIGAN_SPECTRAL_KEYS = (
    (r"\.weight_orig$", ".parametrizations.weight.original"),
    (r"\.weight_u$", ".parametrizations.weight.0._u"),
    (r"\.weight_v$", ".parametrizations.weight.0._v"),
)


def from_hifigan_state_dict(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """A HiFi-GAN state dict (`Generator`, `MultiPeriodDiscriminator`, `MultiScaleDiscriminator`) under this
    package's keys, for `load_state_dict(strict=True)`. A `{"generator": ...}` file (`g_XXXXXXXX`) is unwrapped.
    Layers with a `weight_orig` are spectral-normed: their `weight_v` is the power iteration's vector, not a
    weight norm direction."""
    if set(state) == {"generator"}:
        state = state["generator"]
    spectral = {key.rsplit(".", 1)[0] for key in state if key.endswith(".weight_orig")}
    renamed = {}
    for key, value in state.items():
        rules = _HIFIGAN_SPECTRAL_KEYS if key.rsplit(".", 1)[0] in spectral else _HIFIGAN_KEYS
        for pattern, replacement in rules:
            key = re.sub(pattern, replacement, key)
        renamed[key] = value
    return renamed
