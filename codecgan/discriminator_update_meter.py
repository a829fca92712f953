"""How far the discriminator's steps move its weights: ``diag/d_update_ratio``, read without a host read per step.

A discriminator whose weights no longer move (a vanished learning rate, every step skipped, gradients clipped to
nothing) still reports a loss, so its loss alone cannot show it (DISCRIMINATOR_FROZEN). ``DiscriminatorUpdateMeter``
sums ‖Δθ_D‖² and ‖θ_D‖² per parameter tensor on the device over the discriminator steps between two logging steps,
and the logging step reads the ratio

    sqrt(Σ‖Δθ_D‖² / Σ‖θ_D‖²)

the root-mean-square update norm over the root-mean-square weight norm (‖Δθ_D‖ / ‖θ_D‖ for one step).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor


class DiscriminatorUpdateMeter:
    """Sums of the squared update and weight norms of the discriminator steps not yet read, on their device."""

    def __init__(self) -> None:
        # Per parameter tensor, Σ‖Δθ‖² then Σ‖θ‖²: made at the first measured step, on the parameters' device.
        self.squares: list[Tensor] = []

    @contextmanager
    def measuring(self, parameters: list[Tensor]) -> Iterator[None]:
        """Measure the step taken inside the block: add its ‖Δθ‖² and ‖θ‖² (after the step) for each tensor of
        ``parameters``. Four foreach ops per step whatever the number of tensors; a skipped step adds a zero
        update."""
        with torch.no_grad():
            before = list(torch._foreach_neg(parameters))  # -θ before the step
        yield
        with torch.no_grad():
            torch._foreach_add_(before, parameters)
            norms = torch._foreach_norm([*before, *parameters])
            if len(self.squares) != len(norms) or self.squares[0].device != norms[0].device:
                self.squares = [torch.zeros_like(norm) for norm in norms]
            torch._foreach_addcmul_(self.squares, norms, norms)

    def read(self) -> float | None:
        """The ratio over the steps measured since the last read, and start a new sum (a host read: at logging
        steps only). ``None`` when no step was measured or the weights are all zero."""
        if not self.squares:
            return None
        squares = torch.stack(self.squares).view(2, -1).sum(dim=1)
        torch._foreach_zero_(self.squares)
        update, total = squares.tolist()
        return math.sqrt(update / total) if total > 0 else None
