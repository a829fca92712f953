"""MetricGAN's bounded output activation: ``beta * sigmoid(slope * x)`` with a learnable slope (CMGAN's
and MP-SENet's discriminator head, MP-SENet's magnitude mask)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class LearnableSigmoid(nn.Module):
    """``beta * sigmoid(slope_f * x)`` with one learnable slope per feature along dim 1.

    The output lies in ``(0, beta)``: ``beta=1`` for a normalized-PESQ prediction, ``beta=2`` for a
    magnitude mask that may amplify a bin up to twice (MP-SENet's mask decoder; CMGAN's ends in a
    PReLU instead). A learnable slope lets the network sharpen or soften the saturation per frequency
    bin instead of living with the fixed sigmoid's.

    Shapes: ``[B, features, ...] -> [B, features, ...]``.
    """

    def __init__(self, features: int, beta: float = 1.0) -> None:
        super().__init__()
        if features < 1 or beta <= 0:
            raise ValueError(f"features must be >= 1 and beta > 0, got features={features}, beta={beta}.")
        self.beta = beta
        self.slope = nn.Parameter(torch.ones(features))

    def forward(self, x: Tensor) -> Tensor:
        slope = self.slope.view(-1, *([1] * (x.dim() - 2)))
        return self.beta * torch.sigmoid(slope * x)
