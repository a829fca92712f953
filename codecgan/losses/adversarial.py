"""GAN losses on discriminator outputs shaped `list[list[Tensor]]` (logits last in each list).

Terms are summed over sub-discriminators, not averaged, as in DAC and HiFi-GAN: adding a
sub-discriminator adds a term, and `discriminator_loss_at_chance` tells the callbacks where
"the discriminator cannot tell" lies for a given set. Everything is computed in fp32.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

LOSS_KINDS = ("least_squares", "hinge")
# The discriminator loss of one sub-discriminator whose logits are all 0.
CHANCE_PER_SUB_DISCRIMINATOR = {"least_squares": 1.0, "hinge": 2.0}

DiscriminatorOutputs = Sequence[Sequence[Tensor]]


def _check_kind(kind: str) -> None:
    if kind not in LOSS_KINDS:
        raise ValueError(f"kind must be one of {', '.join(map(repr, LOSS_KINDS))}; got {kind!r}.")


def _check_counts(*outputs: DiscriminatorOutputs) -> None:
    counts = [len(output) for output in outputs]
    if min(counts) == 0 or len(set(counts)) > 1:
        raise ValueError(
            "real and fake outputs need the same, non-zero number of sub-discriminators; "
            f"got {counts}."
        )


def _logits(outputs: DiscriminatorOutputs) -> list[Tensor]:
    return [features[-1].float() for features in outputs]


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
    total = torch.zeros((), device=real_outputs[0][-1].device)
    for real, fake in zip(_logits(real_outputs), _logits(fake_outputs)):
        if kind == "least_squares":
            total = total + (1 - real).pow(2).mean() + fake.pow(2).mean()
        else:
            total = total + F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    return total


def generator_adversarial_loss(
    fake_outputs: DiscriminatorOutputs, kind: str = "least_squares"
) -> Tensor:
    """The generator's adversarial loss, a scalar summed over sub-discriminators k.

    least_squares: Σ_k mean((1 - D_k(fake))²).  hinge: Σ_k mean(relu(1 - D_k(fake))).
    """
    _check_kind(kind)
    _check_counts(fake_outputs)
    total = torch.zeros((), device=fake_outputs[0][-1].device)
    for fake in _logits(fake_outputs):
        if kind == "least_squares":
            total = total + (1 - fake).pow(2).mean()
        else:
            total = total + F.relu(1 - fake).mean()
    return total


def feature_matching_loss(
    real_outputs: DiscriminatorOutputs, fake_outputs: DiscriminatorOutputs
) -> Tensor:
    """Σ_k Σ_{j < last} L1(fake_kj, real_kj): distance between the discriminators' feature maps.

    The logits are excluded, as in DAC (HiFi-GAN includes them). Real features are detached, so
    only the generator learns from this term. A scalar; DAC's default set has 100 terms.
    """
    _check_counts(real_outputs, fake_outputs)
    total = torch.zeros((), device=real_outputs[0][-1].device)
    for real_features, fake_features in zip(real_outputs, fake_outputs):
        for real, fake in zip(real_features[:-1], fake_features[:-1]):
            total = total + F.l1_loss(fake.float(), real.detach().float())
    return total


def discriminator_loss_at_chance(
    real_outputs: DiscriminatorOutputs, kind: str = "least_squares"
) -> float:
    """`discriminator_loss` when every logit is 0, i.e. when the discriminator cannot tell.

    Per sub-discriminator, least squares gives mean((1 - 0)²) + mean(0²) = 1 and hinge
    mean(relu(1 - 0)) + mean(relu(1 + 0)) = 2, whatever the logits' shapes. A Python number, so that
    it never waits for an accelerator.
    """
    _check_kind(kind)
    return float(len(real_outputs)) * CHANCE_PER_SUB_DISCRIMINATOR[kind]


def real_fake_means(
    real_outputs: DiscriminatorOutputs, fake_outputs: DiscriminatorOutputs
) -> tuple[Tensor, Tensor]:
    """Mean logit on real and on fake audio, each averaged per sub-discriminator then over them.

    Detached fp32 scalars. A gap that grows without bound means the discriminator has won.
    """
    _check_counts(real_outputs, fake_outputs)

    def mean_logit(outputs: DiscriminatorOutputs) -> Tensor:
        return torch.stack([logits.detach().mean() for logits in _logits(outputs)]).mean()

    return mean_logit(real_outputs), mean_logit(fake_outputs)
