"""GAN losses on discriminator outputs shaped `list[list[Tensor]]` (logits last in each list).

Terms are summed over sub-discriminators, not averaged, as in DAC and HiFi-GAN: adding a
sub-discriminator adds a term, and `discriminator_loss_at_chance` tells the callbacks where
"the discriminator cannot tell" lies for a given set: the loss of the best constant output. Everything is
computed in fp32 (float64 for float64 outputs).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from codecgan.models.precision import at_least_float32

LOSS_KINDS = ("least_squares", "hinge")
# The lowest discriminator loss of one sub-discriminator that outputs the same constant c for every input: least
# squares (1 - c)² + c² is least at c = 0.5, hinge relu(1 - c) + relu(1 + c) is 2 for every c in [-1, 1].
CHANCE_PER_SUB_DISCRIMINATOR = {"least_squares": 0.5, "hinge": 2.0}

DiscriminatorOutputs = Sequence[Sequence[Tensor]]


def _check_kind(kind: str) -> None:
    if kind not in LOSS_KINDS:
        raise ValueError(f"kind must be one of {', '.join(map(repr, LOSS_KINDS))}; got {kind!r}.")


def _check_counts(*outputs: DiscriminatorOutputs) -> None:
    counts = [len(output) for output in outputs]
    if min(counts) == 0 or len(set(counts)) > 1:
        raise ValueError(f"real and fake outputs need the same, non-zero number of sub-discriminators; got {counts}.")


def _logits(outputs: DiscriminatorOutputs) -> list[Tensor]:
    return [at_least_float32(features[-1]) for features in outputs]


def discriminator_loss(
    real_outputs: DiscriminatorOutputs,
    fake_outputs: DiscriminatorOutputs,
    kind: str = "least_squares",
) -> Tensor:
    """The discriminator's loss, a scalar summed over sub-discriminators k.

    least_squares: Σ_k mean((1 - D_k(real))²) + mean(D_k(fake)²) (DAC, HiFi-GAN).
    hinge:         Σ_k mean(relu(1 - D_k(real))) + mean(relu(1 + D_k(fake))) (MelGAN, EnCodec).
    Pass fake outputs computed on detached generator audio.
    """
    _check_kind(kind)
    _check_counts(real_outputs, fake_outputs)
    reals, fakes = _logits(real_outputs), _logits(fake_outputs)
    if kind == "least_squares":
        return sum_of_means(reals, "square", -1.0, 1.0) + sum_of_means(fakes, "square", 1.0, 0.0)
    return sum_of_means(reals, "relu", -1.0, 1.0) + sum_of_means(fakes, "relu", 1.0, 1.0)


def generator_adversarial_loss(fake_outputs: DiscriminatorOutputs, kind: str = "least_squares") -> Tensor:
    """The generator's adversarial loss, a scalar summed over sub-discriminators k.

    least_squares: Σ_k mean((1 - D_k(fake))²).  hinge: Σ_k mean(relu(1 - D_k(fake))).
    """
    _check_kind(kind)
    _check_counts(fake_outputs)
    return sum_of_means(_logits(fake_outputs), "square" if kind == "least_squares" else "relu", -1.0, 1.0)


def sum_of_means(tensors: Sequence[Tensor], function: str, scale: float, shift: float) -> Tensor:
    """Σ_k mean(f(scale * x_k + shift)) for f = `square` or `relu`, over tensors of any shapes.

    The adversarial losses are such sums over the sub-discriminators; `_SumOfMeans` computes one with a few
    foreach kernels forward and backward, where a loop would dispatch about ten ops per sub-discriminator.
    """
    return _SumOfMeans.apply(function, scale, shift, *tensors)


class _SumOfMeans(torch.autograd.Function):
    @staticmethod
    def forward(function: str, scale: float, shift: float, *tensors: Tensor) -> Tensor:
        values = _affine(tensors, scale, shift)
        if function == "square":
            means = torch._foreach_norm(values, 2)
            torch._foreach_mul_(means, means)
        else:
            torch._foreach_clamp_min_(values, 0.0)
            means = torch._foreach_norm(values, 1)
        torch._foreach_div_(means, [float(tensor.numel()) for tensor in tensors])
        return torch.stack(means).sum()

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.function, ctx.scale, ctx.shift = inputs[:3]
        ctx.save_for_backward(*inputs[3:])

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):
        tensors = ctx.saved_tensors
        grads = _affine(tensors, ctx.scale, ctx.shift)
        if ctx.function == "square":  # d/dx mean((a x + b)²) = 2 a (a x + b) / n
            factors = [2 * ctx.scale / tensor.numel() for tensor in tensors]
        else:  # d/dx mean(relu(a x + b)) = a [a x + b > 0] / n
            torch._foreach_clamp_min_(grads, 0.0)
            torch._foreach_sign_(grads)
            factors = [ctx.scale / tensor.numel() for tensor in tensors]
        torch._foreach_mul_(grads, grad)
        torch._foreach_mul_(grads, factors)
        return (None, None, None, *grads)


def _affine(tensors: Sequence[Tensor], scale: float, shift: float) -> list[Tensor]:
    """`scale * x + shift` for every tensor, as new tensors."""
    if scale == 1.0:
        return torch._foreach_add(tensors, shift)
    values = torch._foreach_mul(tensors, scale)
    if shift:
        torch._foreach_add_(values, shift)
    return values


def feature_matching_loss(real_outputs: DiscriminatorOutputs, fake_outputs: DiscriminatorOutputs) -> Tensor:
    """Σ_k Σ_{j < last} L1(fake_kj, real_kj): distance between the discriminators' feature maps.

    The logits are excluded, as in DAC (HiFi-GAN includes them). Real features are treated as
    constants, so only the generator learns from this term. A scalar; DAC's default set has 100 terms,
    computed with a handful of foreach kernels (`_FeatureMatchingL1`) instead of ten ops per map.
    """
    _check_counts(real_outputs, fake_outputs)
    reals = [real for features in real_outputs for real in features[:-1]]
    fakes = [fake for features in fake_outputs for fake in features[:-1]]
    if len(reals) != len(fakes) or any(r.shape != f.shape for r, f in zip(reals, fakes)):
        raise ValueError("real and fake outputs need feature maps of the same shapes.")
    if not fakes:
        return torch.zeros((), device=fake_outputs[0][-1].device)
    return _FeatureMatchingL1.apply(len(fakes), *fakes, *reals)


class _FeatureMatchingL1(torch.autograd.Function):
    """Σ_i mean(|fake_i - real_i|) over lists of tensors, in fp32; gradients for the fakes only.

    Keeps no tensor of its own for the backward (the feature maps are alive in the discriminator's graph anyway):
    the signs are recomputed there. Arguments: the number n of maps, then n fakes, then n reals.
    """

    @staticmethod
    def forward(n: int, *maps: Tensor) -> Tensor:
        fakes, reals = _as_float(maps[:n]), _as_float(maps[n:])
        norms = torch._foreach_norm(torch._foreach_sub(fakes, reals), 1)
        torch._foreach_div_(norms, [float(fake.numel()) for fake in fakes])
        return torch.stack(norms).sum()

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.n = inputs[0]
        ctx.save_for_backward(*inputs[1:])

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):
        maps = ctx.saved_tensors
        fakes, reals = maps[: ctx.n], maps[ctx.n :]
        signs = torch._foreach_sub(_as_float(fakes), _as_float(reals))
        torch._foreach_sign_(signs)
        torch._foreach_mul_(signs, grad)
        torch._foreach_div_(signs, [float(fake.numel()) for fake in fakes])
        grads = [sign.to(fake.dtype) for sign, fake in zip(signs, fakes)]
        return (None, *grads, *([None] * ctx.n))


def _as_float(tensors: Sequence[Tensor]) -> list[Tensor]:
    return [at_least_float32(tensor) for tensor in tensors]


def discriminator_loss_at_chance(real_outputs: DiscriminatorOutputs, kind: str = "least_squares") -> float:
    """The lowest `discriminator_loss` of a discriminator that cannot tell real from generated audio: one whose
    every sub-discriminator outputs the best constant, whatever its input.

    Per sub-discriminator, least squares gives (1 - c)² + c², least at c = 0.5 with 0.5 (also the LSGAN
    equilibrium, where D(x) = 0.5 everywhere), and hinge relu(1 - c) + relu(1 + c) = 2 for every c in [-1, 1],
    whatever the logits' shapes. A discriminator that has learned only an output bias sits there; one that learns
    more falls below. A Python number, so that it never waits for an accelerator.
    """
    _check_kind(kind)
    return float(len(real_outputs)) * CHANCE_PER_SUB_DISCRIMINATOR[kind]


def split_real_fake(outputs: DiscriminatorOutputs) -> tuple[list[list[Tensor]], list[list[Tensor]]]:
    """Split the outputs of one discriminator call on `cat([real, fake])` into the real and the fake halves.

    Only the logits are split (the losses need nothing else); each real feature list holds its logits alone.
    """
    real, fake = [], []
    for features in outputs:
        real_logits, fake_logits = features[-1].chunk(2)
        real.append([real_logits])
        fake.append([fake_logits])
    return real, fake


def real_fake_means(real_outputs: DiscriminatorOutputs, fake_outputs: DiscriminatorOutputs) -> tuple[Tensor, Tensor]:
    """Mean logit on real and on fake audio, each averaged per sub-discriminator then over them.

    Detached fp32 scalars. A gap that grows without bound means the discriminator has won.
    """
    _check_counts(real_outputs, fake_outputs)

    def mean_logit(outputs: DiscriminatorOutputs) -> Tensor:
        return torch.stack([logits.mean() for logits in _logits(outputs)]).mean()

    with torch.no_grad():
        return mean_logit(real_outputs), mean_logit(fake_outputs)
