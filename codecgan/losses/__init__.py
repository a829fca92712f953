"""Adversarial (functional, on discriminator outputs) and reconstruction losses."""

from codecgan.losses.adversarial import (
    LOSS_KINDS,
    discriminator_loss,
    discriminator_loss_at_chance,
    feature_matching_loss,
    generator_adversarial_loss,
    real_fake_means,
    split_real_fake,
)
from codecgan.losses.mel import MultiScaleMelLoss

__all__ = [
    "LOSS_KINDS",
    "MultiScaleMelLoss",
    "discriminator_loss",
    "discriminator_loss_at_chance",
    "feature_matching_loss",
    "generator_adversarial_loss",
    "real_fake_means",
    "split_real_fake",
]
