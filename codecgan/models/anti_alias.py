"""BigVGAN's anti-aliased activation: upsample 2x, apply a pointwise nonlinearity, low-pass and downsample 2x.

A periodic nonlinearity such as Snake creates harmonics above the Nyquist frequency, which fold back as
aliasing (audible as a metallic buzz in a vocoder's high band). Running it at twice the rate, between two
Kaiser-windowed sinc low-pass filters, keeps those harmonics out of the output band. This is the pure-torch
path of BigVGAN-v2 (`alias_free_activation/torch`); its fused CUDA kernel computes the same function.

The filters are fixed buffers, not parameters (they are part of BigVGAN's state dict as `filter`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def kaiser_sinc_filter(cutoff: float, half_width: float, kernel_size: int) -> Tensor:
    """A windowed-sinc low-pass filter normalised to unit DC gain.

    Args:
        cutoff: cut-off frequency as a fraction of the sample rate (0.25 for a 2x resampler).
        half_width: half the transition band, same unit; sets the Kaiser window's beta (Kaiser's formula).
        kernel_size: taps; an even size is centred between two samples.

    Shapes: `-> [1, 1, kernel_size]`.
    """
    half = kernel_size // 2
    attenuation = 2.285 * (half - 1) * math.pi * 4 * half_width + 7.95  # dB
    if attenuation > 50.0:
        beta = 0.1102 * (attenuation - 8.7)
    elif attenuation >= 21.0:
        beta = 0.5842 * (attenuation - 21) ** 0.4 + 0.07886 * (attenuation - 21.0)
    else:
        beta = 0.0
    window = torch.kaiser_window(kernel_size, beta=beta, periodic=False)
    time = torch.arange(-half, half) + 0.5 if kernel_size % 2 == 0 else torch.arange(kernel_size) - half
    taps = 2 * cutoff * window * torch.sinc(2 * cutoff * time)
    taps /= taps.sum()  # no leakage of the constant component
    return taps.view(1, 1, kernel_size)


class UpSample1d(nn.Module):
    """Zero-stuffing upsampler by `ratio` followed by the sinc low-pass, edges replicate-padded.

    Shapes: `[B, C, T] -> [B, C, T * ratio]`.
    """

    def __init__(self, ratio: int = 2, kernel_size: int | None = None) -> None:
        super().__init__()
        self.ratio = ratio
        kernel_size = int(6 * ratio // 2) * 2 if kernel_size is None else kernel_size
        self.pad = kernel_size // ratio - 1
        self.crop_left = self.pad * ratio + (kernel_size - ratio) // 2
        self.crop_right = self.pad * ratio + (kernel_size - ratio + 1) // 2
        self.register_buffer("filter", kaiser_sinc_filter(0.5 / ratio, 0.6 / ratio, kernel_size))

    def forward(self, x: Tensor) -> Tensor:
        channels = x.shape[1]
        x = F.pad(x, (self.pad, self.pad), mode="replicate")
        x = self.ratio * F.conv_transpose1d(x, self.filter.expand(channels, -1, -1), stride=self.ratio, groups=channels)
        return x[..., self.crop_left : -self.crop_right]


class LowPassFilter1d(nn.Module):
    """The sinc low-pass applied depthwise with a stride, edges replicate-padded.

    Shapes: `[B, C, T] -> [B, C, ceil(T / stride)]`.
    """

    def __init__(self, cutoff: float = 0.5, half_width: float = 0.6, stride: int = 1, kernel_size: int = 12) -> None:
        super().__init__()
        if not 0.0 <= cutoff <= 0.5:
            raise ValueError(f"cutoff must lie in [0, 0.5] (a fraction of the sample rate); got {cutoff}.")
        self.pad_left = kernel_size // 2 - int(kernel_size % 2 == 0)
        self.pad_right = kernel_size // 2
        self.stride = stride
        self.register_buffer("filter", kaiser_sinc_filter(cutoff, half_width, kernel_size))

    def forward(self, x: Tensor) -> Tensor:
        channels = x.shape[1]
        x = F.pad(x, (self.pad_left, self.pad_right), mode="replicate")
        return F.conv1d(x, self.filter.expand(channels, -1, -1), stride=self.stride, groups=channels)


class DownSample1d(nn.Module):
    """The sinc low-pass at `0.5 / ratio` with stride `ratio`.

    Shapes: `[B, C, T] -> [B, C, T / ratio]`.
    """

    def __init__(self, ratio: int = 2, kernel_size: int | None = None) -> None:
        super().__init__()
        kernel_size = int(6 * ratio // 2) * 2 if kernel_size is None else kernel_size
        self.lowpass = LowPassFilter1d(0.5 / ratio, 0.6 / ratio, stride=ratio, kernel_size=kernel_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.lowpass(x)


class AntiAliasedActivation(nn.Module):
    """`activation` applied at `up_ratio` times the rate: upsample, activation, downsample.

    Args:
        activation: a pointwise module on `[B, C, T]` (Snake or SnakeBeta in BigVGAN).
        up_ratio, down_ratio: resampling factors (2 and 2 in BigVGAN).
        up_kernel_size, down_kernel_size: filter taps (12 and 12).

    Shapes: `[B, C, T] -> [B, C, T * up_ratio / down_ratio]`.
    """

    def __init__(
        self,
        activation: nn.Module,
        up_ratio: int = 2,
        down_ratio: int = 2,
        up_kernel_size: int = 12,
        down_kernel_size: int = 12,
    ) -> None:
        super().__init__()
        self.act = activation
        self.upsample = UpSample1d(up_ratio, up_kernel_size)
        self.downsample = DownSample1d(down_ratio, down_kernel_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.downsample(self.act(self.upsample(x)))
