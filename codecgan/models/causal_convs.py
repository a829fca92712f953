"""The codec's convolutions, DAC's centred ones or causal ones, built by one pair of helpers.

Causal padding follows EnCodec's streaming model (its `SConv1d`/`SConvTranspose1d` with `causal=True`):

- a convolution pads `(kernel_size - 1) * dilation - (stride - 1)` zeros on the left only, so output frame n
  reads input samples up to `(n + 1) * stride - 1`: the stride's own window, nothing later. A k=2s, s-strided
  conv maps T samples to T / s frames, as DAC's centred one does;
- a transposed convolution pads nothing and trims its whole excess `kernel_size - stride` on the right, so
  output sample t reads input frames up to `t // stride`.

Stacked, a causal codec's output sample t reads input samples up to the end of t's frame (`codecgan.models.
streaming_codec`), and every layer streams with a carried state of its left padding (`stream_conv1d`) or of its
overlap tail. The layers keep `nn.Conv1d`'s and `nn.ConvTranspose1d`'s parameter names, so a causal generator's
state dict has the same keys and shapes as a centred one's.
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

from codecgan.models.conv_blocks import Float32Conv1d


class LeftPaddedConv:
    """Mixin for a `nn.Conv1d` built with `padding=0`: pads `left_padding` zeros on the left before convolving."""

    kernel_size: tuple[int, ...]
    dilation: tuple[int, ...]
    stride: tuple[int, ...]

    @property
    def left_padding(self) -> int:
        """`(kernel_size - 1) * dilation - (stride - 1)` samples: the input a streaming layer carries over."""
        return (self.kernel_size[0] - 1) * self.dilation[0] - (self.stride[0] - 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.convolve_unpadded(F.pad(x, (self.left_padding, 0)))

    def convolve_unpadded(self, x: Tensor) -> Tensor:
        """The convolution of `x` as it is ("valid"): `[B, C_in, L] -> [B, C_out, (L - span) // stride + 1]`."""
        return super().forward(x)  # type: ignore[misc]


class CausalConv1d(LeftPaddedConv, nn.Conv1d):
    """A `nn.Conv1d` padded on the left only; `[B, C_in, T] -> [B, C_out, T // stride]`."""


class CausalFloat32Conv1d(LeftPaddedConv, Float32Conv1d):
    """`Float32Conv1d` (fp32 under autocast, for the waveform layer) padded on the left only."""


class CausalConvTranspose1d(nn.ConvTranspose1d):
    """A `nn.ConvTranspose1d` without padding whose `kernel_size - stride` last samples are dropped:
    `[B, C_in, N] -> [B, C_out, N * stride]`."""

    @property
    def overlap(self) -> int:
        """Samples each frame's output spills into the next frames': what a streaming layer carries over."""
        return (self.kernel_size[0] - 1) * self.dilation[0] + 1 - self.stride[0]

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x)[..., : x.shape[-1] * self.stride[0]]


def codec_conv1d(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    *,
    causal: bool,
    padding: int = 0,
    waveform: bool = False,
    **conv_kwargs: Any,
) -> nn.Conv1d:
    """A weight-normed conv: DAC's, with symmetric `padding`, or with `causal` EnCodec's left padding (and
    `padding` ignored). `waveform`: the output layer, computed in fp32 (`Float32Conv1d`). `conv_kwargs`: stride,
    dilation."""
    if causal:
        conv_class = CausalFloat32Conv1d if waveform else CausalConv1d
        return weight_norm(conv_class(in_channels, out_channels, kernel_size, **conv_kwargs))
    conv_class = Float32Conv1d if waveform else nn.Conv1d
    return weight_norm(conv_class(in_channels, out_channels, kernel_size, padding=padding, **conv_kwargs))


def codec_conv_transpose1d(
    in_channels: int, out_channels: int, kernel_size: int, *, causal: bool, stride: int, **centred_kwargs: Any
) -> nn.ConvTranspose1d:
    """A weight-normed transposed conv upsampling by `stride`: DAC's with `centred_kwargs` (padding,
    output_padding), or with `causal` one that trims its excess on the right (and `centred_kwargs` ignored)."""
    if causal:
        return weight_norm(CausalConvTranspose1d(in_channels, out_channels, kernel_size, stride=stride))
    return weight_norm(nn.ConvTranspose1d(in_channels, out_channels, kernel_size, stride=stride, **centred_kwargs))
