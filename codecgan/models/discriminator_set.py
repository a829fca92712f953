"""A union of discriminators, so that a config can combine e.g. an MPD and a multi-scale D."""

from __future__ import annotations

from torch import Tensor, nn


class DiscriminatorSet(nn.Module):
    """Runs every discriminator on the same audio and concatenates their feature lists.

    The losses sum over sub-discriminators, so a set behaves as one larger discriminator.

    Args:
        discriminators: modules mapping `[B, 1, T]` to `list[list[Tensor]]` (logits last).
    """

    def __init__(self, discriminators: list[nn.Module]) -> None:
        super().__init__()
        if len(discriminators) == 0:
            raise ValueError("DiscriminatorSet needs at least one discriminator, got none.")
        self.discriminators = nn.ModuleList(discriminators)

    def forward(self, audio: Tensor) -> list[list[Tensor]]:
        """`audio: [B, 1, T]` -> the sub-discriminators' feature lists, in the given order."""
        return [features for discriminator in self.discriminators for features in discriminator(audio)]
