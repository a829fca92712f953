"""Snake's hand-written backward against autograd's derivatives of its formula, and its shared constants."""

from __future__ import annotations

import pytest
import torch

from codecgan.models.conv_blocks import Snake1d, shared_snake_constants, snake


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


def test_shared_snake_constants_change_no_value_and_are_cleared() -> None:
    """Inside ``shared_snake_constants`` the Snakes give the same outputs and gradients, bit for bit, and after
    it (even after an exception) each computes its own constants again."""
    torch.manual_seed(0)
    snakes = [Snake1d(3), Snake1d(3)]
    for module in snakes:
        module.alpha.data.uniform_(0.1, 3.0)
    x = torch.randn(2, 3, 40)

    def run() -> list[torch.Tensor]:
        x_leaf = x.clone().requires_grad_()
        output = snakes[1](snakes[0](x_leaf))
        output.backward(torch.ones_like(output))
        results = [output.detach(), x_leaf.grad, *(module.alpha.grad.clone() for module in snakes)]
        for module in snakes:
            module.alpha.grad = None
        return results

    alone = run()
    with shared_snake_constants(snakes):
        assert all(module.constants is not None for module in snakes)
        shared = run()
    for mine, reference in zip(shared, alone):
        assert torch.equal(mine, reference)
    with pytest.raises(RuntimeError), shared_snake_constants(snakes):
        raise RuntimeError("inside")
    assert all(module.constants is None for module in snakes)
