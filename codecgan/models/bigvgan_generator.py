"""BigVGAN-v2's generator (NVIDIA/BigVGAN, `bigvgan` 2.4.1): log-mel `[B, n_mels, frames]` -> waveform `[B, 1, T]`.

HiFi-GAN's layout (a conv, then per stage a transposed-conv upsampler and parallel residual blocks averaged)
with anti-aliased multi-periodicity (AMP) blocks: every activation is a Snake or SnakeBeta run at twice the
rate between sinc filters (`anti_alias.AntiAliasedActivation`). Layer names follow BigVGAN's, so
`from_bigvgan_state_dict` maps a `bigvgan_generator.pt` onto this module by renaming weight norm's tensors only.
With the defaults (the released `bigvgan_v2_24khz_100band_256x` config) it has 112,446,289 parameters
(112,231,249 with 80 mels, the 22 kHz config); weight norm's gains included, as in BigVGAN's count.
"""

from __future__ import annotations

import re
from typing import Sequence

import torch
from torch import Tensor, nn

from codecgan.models.anti_alias import AntiAliasedActivation
from codecgan.models.conv_blocks import draw_like_reference_init, weight_norm_conv1d, weight_norm_conv_transpose1d

ACTIVATIONS = ("snake", "snakebeta")


class Snake(nn.Module):
    """`x + sin(alpha x)^2 / alpha` with one alpha per channel, stored as log(alpha) when `logscale`.

    BigVGAN's variant of DAC's `Snake1d`: the parameter is `[C]`, and BigVGAN-v2 learns it on a log scale
    (initialised to 0, so alpha starts at 1) so that it stays positive.

    Shapes: `[B, C, T] -> [B, C, T]`.
    """

    def __init__(self, channels: int, logscale: bool = False) -> None:
        super().__init__()
        self.logscale = logscale
        self.alpha = nn.Parameter(torch.zeros(channels) if logscale else torch.ones(channels))

    def forward(self, x: Tensor) -> Tensor:
        alpha = self.alpha[None, :, None]
        if self.logscale:
            alpha = alpha.exp()
        return x + (1.0 / (alpha + 1e-9)) * torch.sin(x * alpha).pow(2)


class SnakeBeta(nn.Module):
    """`x + sin(alpha x)^2 / beta`: Snake with the periodic term's magnitude (beta) learned apart from its
    frequency (alpha), both per channel and, when `logscale`, stored as logarithms.

    Shapes: `[B, C, T] -> [B, C, T]`.
    """

    def __init__(self, channels: int, logscale: bool = False) -> None:
        super().__init__()
        self.logscale = logscale
        self.alpha = nn.Parameter(torch.zeros(channels) if logscale else torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels) if logscale else torch.ones(channels))

    def forward(self, x: Tensor) -> Tensor:
        alpha, beta = self.alpha[None, :, None], self.beta[None, :, None]
        if self.logscale:
            alpha, beta = alpha.exp(), beta.exp()
        return x + (1.0 / (beta + 1e-9)) * torch.sin(x * alpha).pow(2)


def anti_aliased(activation: str, channels: int, logscale: bool) -> AntiAliasedActivation:
    """An anti-aliased Snake (`"snake"`) or SnakeBeta (`"snakebeta"`) over `channels`."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(map(repr, ACTIVATIONS))}; got {activation!r}.")
    periodic = Snake if activation == "snake" else SnakeBeta
    return AntiAliasedActivation(periodic(channels, logscale))


def check_layout(
    upsample_rates: Sequence[int],
    upsample_kernel_sizes: Sequence[int],
    resblock_kernel_sizes: Sequence[int],
    resblock_dilation_sizes: Sequence[Sequence[int]],
    resblock: int,
) -> None:
    """Raise a ``ValueError`` naming the settings when a HiFi-GAN-style generator's layout lists disagree in length or
    its residual block kind is not 1 or 2 (HiFi-GAN's and BigVGAN's generators share these settings)."""
    if len(upsample_rates) != len(upsample_kernel_sizes):
        raise ValueError(
            f"upsample_rates {list(upsample_rates)} and upsample_kernel_sizes {list(upsample_kernel_sizes)} "
            "need one entry per stage each."
        )
    if len(resblock_kernel_sizes) != len(resblock_dilation_sizes):
        raise ValueError(
            f"resblock_kernel_sizes {list(resblock_kernel_sizes)} and resblock_dilation_sizes "
            f"{[list(d) for d in resblock_dilation_sizes]} need one entry per block each."
        )
    if resblock not in (1, 2):
        raise ValueError(f"resblock must be 1 or 2; got {resblock!r}.")


def upsampling_convs(
    initial_channels: int, upsample_rates: Sequence[int], upsample_kernel_sizes: Sequence[int]
) -> tuple[nn.ModuleList, list[int]]:
    """HiFi-GAN's and BigVGAN's upsampling stages: weight-normed transposed convs halving the channels at each stage,
    and each stage's output channels."""
    ups = nn.ModuleList(
        weight_norm_conv_transpose1d(
            initial_channels // 2**i,
            initial_channels // 2 ** (i + 1),
            kernel,
            stride=rate,
            padding=(kernel - rate) // 2,
        )
        for i, (rate, kernel) in enumerate(zip(upsample_rates, upsample_kernel_sizes))
    )
    return ups, [initial_channels // 2 ** (i + 1) for i in range(len(upsample_rates))]


def same_padding(kernel_size: int, dilation: int = 1) -> int:
    """Padding that keeps the length of a stride-1 conv: `dilation * (kernel_size - 1) / 2`."""
    return (kernel_size * dilation - dilation) // 2


class AMPBlock(nn.Module):
    """Residual block of BigVGAN: per dilation d, `x + conv(act(conv_d(act(x))))` (block 1), or
    `x + conv_d(act(x))` (block 2, without the second, undilated conv).

    Args:
        channels: C.
        kernel_size: conv kernel in samples.
        dilations: one residual unit per dilation.
        activation: "snake" or "snakebeta", each anti-aliased.
        logscale: learn the activation's parameters as logarithms.
        second_convs: block 1 (True) or block 2 (False).

    Shapes: `[B, C, T] -> [B, C, T]`.
    """

    def __init__(
        self,
        channels: int,
        kernel_size: int = 3,
        dilations: Sequence[int] = (1, 3, 5),
        activation: str = "snakebeta",
        logscale: bool = True,
        second_convs: bool = True,
    ) -> None:
        super().__init__()
        dilated = nn.ModuleList(
            weight_norm_conv1d(channels, channels, kernel_size, dilation=d, padding=same_padding(kernel_size, d))
            for d in dilations
        )
        # BigVGAN's `self.convs1.apply(init_weights)` (AMPBlock2: `self.convs.apply(init_weights)`): see
        # `draw_like_reference_init`; a seeded build then has BigVGAN's initial weights.
        draw_like_reference_init(dilated)
        # Block 1 keeps BigVGAN's names (convs1, convs2; activations alternate before convs1[i] and convs2[i]).
        if second_convs:
            self.convs1 = dilated
            self.convs2 = nn.ModuleList(
                weight_norm_conv1d(channels, channels, kernel_size, padding=same_padding(kernel_size))
                for _ in dilations
            )
            draw_like_reference_init(self.convs2)  # `self.convs2.apply(init_weights)`
        else:
            self.convs = dilated
        self.second_convs = second_convs
        layers = 2 * len(dilations) if second_convs else len(dilations)
        self.activations = nn.ModuleList(anti_aliased(activation, channels, logscale) for _ in range(layers))

    def forward(self, x: Tensor) -> Tensor:
        if not self.second_convs:
            for conv, act in zip(self.convs, self.activations):
                x = x + conv(act(x))
            return x
        acts = self.activations
        for conv1, conv2, act1, act2 in zip(self.convs1, self.convs2, acts[::2], acts[1::2]):
            x = conv2(act2(conv1(act1(x)))) + x
        return x


class BigVGANGenerator(nn.Module):
    """BigVGAN-v2's generator.

    Args:
        num_mels: mel bands of the input.
        upsample_rates: per stage; their product is the hop length (256 in the released v2 configs).
        upsample_kernel_sizes: transposed-conv kernels, one per stage (2 x rate in the released configs).
        upsample_initial_channel: channels after the first conv, halved at every stage.
        resblock_kernel_sizes: one AMP block per kernel size in every stage, outputs averaged.
        resblock_dilation_sizes: the dilations of each of those blocks.
        resblock: 1 (AMPBlock1, two convs per dilation) or 2 (one).
        activation: "snake" or "snakebeta".
        snake_logscale: learn the activation's parameters as logarithms.
        use_tanh_at_final: bound the output with tanh (v1) or, when False, clamp it to [-1, 1] (v2).
        use_bias_at_final: a bias in the last conv (v1: True; v2: False).

    Shapes: `mel: [B, num_mels, frames] -> [B, 1, frames * prod(upsample_rates)]`.
    """

    def __init__(
        self,
        num_mels: int = 100,
        upsample_rates: Sequence[int] = (4, 4, 2, 2, 2, 2),
        upsample_kernel_sizes: Sequence[int] = (8, 8, 4, 4, 4, 4),
        upsample_initial_channel: int = 1536,
        resblock_kernel_sizes: Sequence[int] = (3, 7, 11),
        resblock_dilation_sizes: Sequence[Sequence[int]] = ((1, 3, 5), (1, 3, 5), (1, 3, 5)),
        resblock: int = 1,
        activation: str = "snakebeta",
        snake_logscale: bool = True,
        use_tanh_at_final: bool = False,
        use_bias_at_final: bool = False,
    ) -> None:
        super().__init__()
        check_layout(upsample_rates, upsample_kernel_sizes, resblock_kernel_sizes, resblock_dilation_sizes, resblock)
        self.num_kernels = len(resblock_kernel_sizes)
        self.use_tanh_at_final = use_tanh_at_final
        self.conv_pre = weight_norm_conv1d(num_mels, upsample_initial_channel, 7, padding=3)
        self.ups, channels = upsampling_convs(upsample_initial_channel, upsample_rates, upsample_kernel_sizes)
        self.resblocks = nn.ModuleList(
            AMPBlock(ch, kernel, dilations, activation, snake_logscale, second_convs=resblock == 1)
            for ch in channels
            for kernel, dilations in zip(resblock_kernel_sizes, resblock_dilation_sizes)
        )
        self.activation_post = anti_aliased(activation, channels[-1], snake_logscale)
        self.conv_post = weight_norm_conv1d(channels[-1], 1, 7, padding=3, bias=use_bias_at_final)
        # `self.ups[i].apply(init_weights)`, `self.conv_post.apply(init_weights)`: no parameter changes, but the
        # draws keep the RNG where BigVGAN's leaves it (its train.py builds the discriminators next).
        draw_like_reference_init([*self.ups, self.conv_post])

    def forward(self, mel: Tensor) -> Tensor:
        x = self.conv_pre(mel)
        for stage, upsample in enumerate(self.ups):
            x = upsample(x)
            blocks = self.resblocks[stage * self.num_kernels : (stage + 1) * self.num_kernels]
            total = blocks[0](x)
            for block in blocks[1:]:
                total = total + block(x)
            x = total / self.num_kernels
        x = self.conv_post(self.activation_post(x))
        return torch.tanh(x) if self.use_tanh_at_final else x.clamp(-1.0, 1.0)


# BigVGAN's checkpoints use torch.nn.utils.weight_norm (weight_g, weight_v) and wrap each upsampler in a list.
_BIGVGAN_KEYS = (
    (r"\.weight_g$", ".parametrizations.weight.original0"),
    (r"\.weight_v$", ".parametrizations.weight.original1"),
    (r"^ups\.(\d+)\.0\.", r"ups.\1."),
    (r"\.band_convs\.", ".band_stacks."),
)


def from_bigvgan_state_dict(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """A BigVGAN state dict (generator, or a discriminator of `bigvgan_discriminators`) under this package's
    keys, for `load_state_dict(strict=True)`: weight norm's `weight_g`/`weight_v` become the parametrization's
    `original0`/`original1`, and the generator's `ups.i.0.` becomes `ups.i.`. A `{"generator": ...}` file
    (`bigvgan_generator.pt`) is unwrapped."""
    if set(state) == {"generator"}:
        state = state["generator"]
    renamed = {}
    for key, value in state.items():
        for pattern, replacement in _BIGVGAN_KEYS:
            key = re.sub(pattern, replacement, key)
        renamed[key] = value
    return renamed
