"""Small layers shared by the generators and discriminators: weight-normed convolutions and Snake.

Weight norm (not spectral norm) follows DAC and HiFi-GAN. The parametrization keeps two tensors per
weight, `original0` (g, one gain per output channel of a Conv, per input channel of a
ConvTranspose) and `original1` (v, the direction), and both count as parameters.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

from codecgan.models.precision import at_least_float32


def weight_norm_conv1d(in_channels: int, out_channels: int, kernel_size: int, **conv_kwargs: Any) -> nn.Conv1d:
    """A weight-normed `nn.Conv1d`; `conv_kwargs` go to the convolution (stride, padding, ...)."""
    return weight_norm(nn.Conv1d(in_channels, out_channels, kernel_size, **conv_kwargs))


def draw_like_reference_init(convs: Sequence[nn.Module]) -> None:
    """Draw, and discard, one N(0, 0.01) sample per weight element of each conv, in order.

    HiFi-GAN and BigVGAN call `init_weights` (`m.weight.data.normal_(0, 0.01)`) on their weight-normed
    convs. With `torch.nn.utils.weight_norm`'s hook, `m.weight` is a tensor computed from `weight_g` and
    `weight_v`, so the call changes no parameter but advances the global RNG by as many draws as the
    weight has elements. Making the same draws at the same point keeps a seeded build's later layers
    equal to the reference's.
    """
    for conv in convs:
        torch.empty(conv.weight.shape, dtype=conv.weight.dtype).normal_(0.0, 0.01)


class Float32Conv1d(nn.Conv1d):
    """A `nn.Conv1d` that computes in fp32 even inside autocast: for layers whose output is the waveform.

    A bf16 waveform carries rounding noise about 50 dB below the signal (8 bits of mantissa), spread over all
    frequencies, which the log-mel loss sees in quiet high bands and which caps a reconstruction's SNR. The
    output layer has one channel, so fp32 costs next to nothing. Returns float32 (float64 in a float64 model).
    """

    def forward(self, x: Tensor) -> Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            return super().forward(at_least_float32(x))


def weight_norm_conv_transpose1d(
    in_channels: int, out_channels: int, kernel_size: int, **conv_kwargs: Any
) -> nn.ConvTranspose1d:
    """A weight-normed `nn.ConvTranspose1d`, the upsampling layer of the codec decoder."""
    return weight_norm(nn.ConvTranspose1d(in_channels, out_channels, kernel_size, **conv_kwargs))


def weight_norm_conv2d(
    in_channels: int,
    out_channels: int,
    kernel_size: int | tuple[int, int],
    **conv_kwargs: Any,
) -> nn.Conv2d:
    """A weight-normed `nn.Conv2d`, the layer of the period and STFT discriminators."""
    return weight_norm(nn.Conv2d(in_channels, out_channels, kernel_size, **conv_kwargs))


class Snake1d(nn.Module):
    """DAC's periodic activation `x + sin(alpha * x)^2 / alpha`, with one learned alpha per channel.

    The periodic term gives the generator an inductive bias towards periodic waveforms (pitch),
    which ReLU-family activations lack. `1e-9` keeps the division finite if an alpha reaches 0.
    Computed by `snake` (4 ops forward and 8 backward inside `shared_snake_constants`, 5 and 9 outside,
    instead of autograd's 7 and 17).

    Args:
        channels: number of channels C of the input.

    Shapes:
        x: [B, C, T] -> [B, C, T]
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1, channels, 1))
        # (alpha + 1e-9, 2 alpha), set by `shared_snake_constants` for one forward of the network.
        self.constants: tuple[Tensor, Tensor] | None = None

    def forward(self, x: Tensor) -> Tensor:
        return snake(x, self.alpha, *(self.constants or ()))


@contextmanager
def shared_snake_constants(snakes: Sequence[Snake1d]) -> Iterator[None]:
    """Inside: every Snake of `snakes` takes its `alpha + 1e-9` and `2 alpha` from two foreach ops over all of them.

    A DAC-size generator has 58 Snakes; computed by each, these constants are 116 ops of a few hundred elements
    per training step. Their backward keeps them. Compiled code (`torch.compile`) fuses them anyway, so there the
    Snakes compute their own.
    """
    if not snakes or torch.compiler.is_compiling():
        yield
        return
    with torch.no_grad():
        alphas = [snake.alpha for snake in snakes]
        constants = zip(torch._foreach_add(alphas, 1e-9), torch._foreach_mul(alphas, 2.0))
    for snake_module, snake_constants in zip(snakes, constants):
        snake_module.constants = snake_constants
    try:
        yield
    finally:
        for snake_module in snakes:
            snake_module.constants = None


def snake(x: Tensor, alpha: Tensor, alpha_safe: Tensor | None = None, two_alpha: Tensor | None = None) -> Tensor:
    """`x + sin(alpha * x)^2 / (alpha + 1e-9)` for `x: [B, C, T]`, `alpha: [1, C, 1]`, with a hand-written backward.

    `alpha_safe` (`alpha + 1e-9`) and `two_alpha` (`2 alpha`), without gradient, may be given precomputed
    (`shared_snake_constants`). A DAC-size generator has 58 Snakes, and autograd's backward of the formula
    dispatches 17 ops each; the derivatives below need 8 or 9, from tensors the forward computes anyway. With
    `s = sin(alpha x)`, `d/dx = 1 + sin(2 alpha x)` and `d/dalpha = (x sin(2 alpha x) - s^2 / alpha) / alpha`, summed
    over batch and time for `grad_alpha`; the 1e-9 is treated as 0 inside `d/dx` (a relative difference of
    1e-9 / alpha, which moves a DAC-size generator's float64 gradients by 2.5e-8 of their scale). The backward
    keeps `s^2` rather than the output: saving a function's own output costs autograd an op when it saves it and
    another when it unpacks it.

    DAC multiplies by `(alpha + 1e-9).reciprocal()` where this divides: one rounding instead of two, one op fewer,
    so values differ from DAC's in the last bit: a DAC-size generator's output by 1.8e-6 of its scale at most
    (tests/models/test_dac_reference.py); computed in DAC's form, the whole generator equals DAC's to the bit.
    """
    return _Snake.apply(x, alpha, alpha_safe, two_alpha)


class _Snake(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, alpha: Tensor, alpha_safe: Tensor | None, two_alpha: Tensor | None) -> Tensor:
        alpha_safe = alpha + 1e-9 if alpha_safe is None else alpha_safe
        sin_squared = torch.sin(alpha * x).square()
        ctx.save_for_backward(x, alpha, alpha_safe, sin_squared, two_alpha)
        return torch.addcdiv(x, sin_squared, alpha_safe)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, Tensor, None, None]:
        x, alpha, alpha_safe, sin_squared, two_alpha = ctx.saved_tensors
        sin_double = torch.sin(x * (2 * alpha if two_alpha is None else two_alpha))
        grad_x = torch.addcmul(grad, grad, sin_double)
        per_sample = torch.addcdiv(x * sin_double, sin_squared, alpha_safe, value=-1).mul_(grad)
        return grad_x, (per_sample.sum(dim=(0, 2), keepdim=True) / alpha_safe).to(alpha.dtype), None, None
