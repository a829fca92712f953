"""DDPRouting and on_any_rank: a training step calls the network it trains through its own wrapper. Under 2 processes,
on_any_rank raises a flag on every rank (tests/test_enhance_ddp.py: drop_batch on one rank skips every rank's
discriminator update); on one process it is the flag itself, with no op dispatched."""

from __future__ import annotations

import torch
from torch import nn

from codecgan.ddp_strategy import DDPRouting, on_any_rank


class Wrapper(nn.Module):
    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.module = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)


def test_a_training_step_calls_the_wrapper_and_everything_else_the_network() -> None:
    generator, discriminator = nn.Linear(2, 2), nn.Linear(2, 1)
    routing = DDPRouting()
    assert routing.trained(generator, training=True) is generator  # no wrapper: one device
    wrappers = routing.wrap([generator, discriminator], Wrapper)
    assert [wrapper.module for wrapper in wrappers] == [generator, discriminator]
    assert routing.trained(generator, training=True) is wrappers[0]
    assert routing.trained(discriminator, training=True) is wrappers[1]
    assert routing.trained(discriminator, training=False) is discriminator  # validation, test, predict
    other = nn.Identity()
    assert routing.trained(other, training=True) is other  # a module without a wrapper is itself
    routing.unwrap()
    assert routing.trained(generator, training=True) is generator


def test_one_rank_needs_no_collective() -> None:
    flag = torch.tensor(True)
    assert on_any_rank(flag, world_size=1) is flag
