"""Losses of the metric-discriminator enhancement family (CMGAN, MP-SENet), on compressed spectra.

Spectra are ``[B, 1, F, T']`` (compressed real, imaginary and magnitude); waveforms ``[B, 1, T]``;
discriminator outputs ``[B]`` in (0, 1). Everything is computed in fp32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

PESQ_FAILURE_POLICIES = ("mask", "drop_batch")
# Wideband MOS-LQO from the `pesq` package lies in [1.04, 4.64]; MetricGAN maps it with (PESQ - 1) / 3.5
# to about [0.01, 1.04] (CMGAN leaves it there; clean vs clean gives 1.04, above the discriminator's top, 1).
PESQ_FLOOR = 1.0
PESQ_SPAN = 3.5


def ri_loss(estimate_real: Tensor, estimate_imag: Tensor, clean_real: Tensor, clean_imag: Tensor) -> Tensor:
    """MSE of the real parts plus MSE of the imaginary parts (CMGAN's "RI" loss)."""
    real = F.mse_loss(estimate_real.float(), clean_real.float())
    return real + F.mse_loss(estimate_imag.float(), clean_imag.float())


def magnitude_loss(estimate_magnitude: Tensor, clean_magnitude: Tensor) -> Tensor:
    """MSE of the compressed magnitudes."""
    return F.mse_loss(estimate_magnitude.float(), clean_magnitude.float())


def time_loss(estimate: Tensor, clean: Tensor) -> Tensor:
    """Mean absolute error of the waveforms."""
    return (estimate.float() - clean.float()).abs().mean()


def metric_generator_loss(estimate_prediction: Tensor) -> Tensor:
    """``mean((D(clean, estimate) - 1)**2)``: the generator asks for the highest predicted PESQ."""
    return (estimate_prediction.float() - 1).square().mean()


def pesq_to_target(pesq: Tensor, clamp: bool = False) -> Tensor:
    """``(pesq - 1) / 3.5`` as CMGAN computes it, or clamped to [0, 1] (``clamp``); NaN (a failed clip) stays NaN."""
    target = (pesq.float() - PESQ_FLOOR) / PESQ_SPAN
    return target.clamp(0.0, 1.0) if clamp else target


def pesq_weights(target: Tensor, policy: str) -> Tensor:
    """Per-clip weights ``[B]`` of the discriminator's metric term for normalized targets ``[B]``.

    ``mask``: 1 where the clip has a (finite) target, 0 where it failed. ``drop_batch`` (CMGAN's
    behaviour): all 0 when any clip failed, else all 1; the enhancer then skips the discriminator's
    whole update, as CMGAN does.
    """
    if policy not in PESQ_FAILURE_POLICIES:
        raise ValueError(f"pesq_failure_policy must be one of {PESQ_FAILURE_POLICIES}, got {policy!r}.")
    valid = torch.isfinite(target).float()
    if policy == "drop_batch":
        return valid * valid.all()  # decided without reading the tensor back
    return valid


def metric_discriminator_loss(
    clean_prediction: Tensor, estimate_prediction: Tensor, target: Tensor, weight: Tensor
) -> Tensor:
    """``mean((D(clean, clean) - 1)**2) + sum_i w_i (D(clean, est)_i - target_i)**2 / max(sum_i w_i, 1)``.

    A clip with weight 0 (no PESQ) adds nothing and may have a NaN target, but the term is always
    computed: every DDP rank must run the discriminator's backward every step, or the ranks that skip
    it leave the others waiting in the gradient all-reduce. With 0/1 weights the metric term is the
    MSE over the clips that have a target, as in CMGAN when all have one.
    """
    weight = weight.float()
    target = torch.where(weight > 0, target.float(), torch.zeros_like(weight))
    squared = (estimate_prediction.float() - target).square()
    metric_term = (weight * squared).sum() / weight.sum().clamp_min(1.0)
    return (clean_prediction.float() - 1).square().mean() + metric_term


def metric_discriminator_loss_at_chance(target: Tensor, weight: Tensor) -> Tensor:
    """The lowest ``metric_discriminator_loss`` of a discriminator that outputs one constant c for every input, i.e.
    cannot tell clips apart: a scalar tensor, for targets and weights ``[B]`` as that loss takes them.

    The loss is ``(c - 1)**2 + sum_i w_i (c - t_i)**2 / W`` with ``W = max(sum_i w_i, 1)``, least at
    ``c = (1 + sum_i w_i t_i / W) / (1 + sum_i w_i / W)``. With 0/1 weights and a clip scored, that is twice the
    variance of the targets the loss pools (``D(clean, clean) -> 1`` weighing as much as the scored clips together):
    ``var(t) + (1 - mean(t))**2 / 2``. With no clip scored it is 0 (c = 1 fits ``D(clean, clean)``).
    """
    weight = weight.float()
    target = torch.where(weight > 0, target.float(), torch.zeros_like(weight))
    scale = weight.sum().clamp_min(1.0)
    constant = (1 + (weight * target).sum() / scale) / (1 + weight.sum() / scale)
    prediction = constant.expand_as(weight)
    return metric_discriminator_loss(prediction, prediction, target, weight)
