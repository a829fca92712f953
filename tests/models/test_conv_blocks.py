"""Snake's hand-written backward against autograd's derivatives of its formula."""

from __future__ import annotations

import torch

from codecgan.models.conv_blocks import snake


def snake_formula(x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    return x + torch.sin(alpha * x).square() / (alpha + 1e-9)


def test_snake_gradients_equal_autograds_of_the_formula() -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 50, dtype=torch.float64, generator=generator) * 3
    alpha = torch.tensor([0.2, 1.0, 4.0], dtype=torch.float64).view(1, 3, 1)
    grad = torch.randn(2, 3, 50, dtype=torch.float64, generator=generator)
    results = []
    for function in (snake, snake_formula):
        x_leaf, alpha_leaf = x.clone().requires_grad_(), alpha.clone().requires_grad_()
        output = function(x_leaf, alpha_leaf)
        results.append((output, *torch.autograd.grad(output, (x_leaf, alpha_leaf), grad)))
    for mine, formula in zip(*results):  # the derivatives leave out the 1e-9: 1e-9 / alpha relative
        torch.testing.assert_close(mine, formula, rtol=1e-7, atol=1e-7)
    assert torch.autograd.gradcheck(snake, (x[:1, :, :8].clone().requires_grad_(), alpha.clone().requires_grad_()))
