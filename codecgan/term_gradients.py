"""How hard each generator loss term pulls: the norm of its gradient at the generator's output (GradientBalance).

A term's weight says little about its pull: a 0.05-weighted GAN term can be invisible next to a 0.9-weighted
magnitude term (GAN_TERM_NEGLIGIBLE). Measured at the generator's output (``GANModule.gradient_probe``), not at
its weights, one backward through the loss alone per term; ``GANModule`` measures every
``term_gradient_interval`` batches, which the ``GradientBalance`` callback sets.
"""

from __future__ import annotations

import torch
from torch import Tensor


def term_gradient_norms(terms: dict[str, Tensor], probe: tuple[Tensor, ...]) -> dict[str, Tensor]:
    """For each term of ``terms`` that has a graph, ‖∂term/∂probe‖ over all the ``probe`` tensors together (a 0-dim
    float32 tensor; zero when the term does not depend on them). The graph is kept for the generator's backward."""
    norms = {}
    for name, term in terms.items():
        if not term.requires_grad:
            continue
        grads = torch.autograd.grad(term, probe, retain_graph=True, allow_unused=True)
        squares = [g.float().pow(2).sum() for g in grads if g is not None]
        norms[name] = torch.stack(squares).sum().sqrt() if squares else torch.zeros((), device=probe[0].device)
    return norms
