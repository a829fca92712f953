"""optimizer_steps.backward on one device: the gradients of ``loss.backward()``, values and memory layout alike, one op
fewer per parameter tensor; other strategies, and calls with arguments, get ``loss.backward`` itself."""

from __future__ import annotations

import torch
from lightning.pytorch.strategies import DDPStrategy, SingleDeviceStrategy
from torch import nn

from bench.dispatch_counts import counting_ops
from codecgan import optimizer_steps
from codecgan.optimizer_steps import accumulate_gradients


class Network(nn.Module):
    """Two layers, one of them with a transposed (non-contiguous) weight, and a parameter the loss never uses."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.first = nn.Linear(6, 5)
        self.transposed = nn.Parameter(torch.randn(3, 5).t())  # [5, 3], strides (1, 5)
        self.unused = nn.Parameter(torch.randn(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.first(x)) @ self.transposed


def loss_of(network: Network, seed: int) -> torch.Tensor:
    x = torch.randn(4, 6, generator=torch.Generator().manual_seed(seed))
    return network(x).square().sum()


def test_gradients_equal_loss_backwards_in_value_and_layout_and_accumulate() -> None:
    reference, network = Network(), Network()
    for seed in (1, 2):  # the second call adds to the first's .grad
        loss_of(reference, seed).backward()
        accumulate_gradients(loss_of(network, seed), list(network.parameters()))
        for (name, expected), parameter in zip(reference.named_parameters(), network.parameters()):
            if expected.grad is None:
                assert parameter.grad is None, name
                continue
            assert torch.equal(parameter.grad, expected.grad), name
            assert parameter.grad.stride() == expected.grad.stride() == parameter.stride(), name
    assert network.transposed.grad.stride() == (1, 5)


def test_a_fresh_backward_saves_one_op_per_parameter_tensor() -> None:
    counts = {}
    for how in ("backward", "grad"):
        network = nn.Sequential(*[nn.Linear(8, 8) for _ in range(5)])  # 10 parameter tensors
        loss = network(torch.randn(4, 8)).square().sum()
        with counting_ops() as counted:
            if how == "backward":
                loss.backward()
            else:
                accumulate_gradients(loss, list(network.parameters()))
        counts[how] = sum(counted.outside.values())
    assert counts["backward"] - counts["grad"] == 10, counts


def test_frozen_parameters_are_left_alone_on_one_device() -> None:
    network = Network()
    network.first.requires_grad_(False)
    optimizer_steps.backward(loss_of(network, 1), network.parameters(), SingleDeviceStrategy("cpu"))
    assert network.first.weight.grad is None and network.transposed.grad is not None


def test_ddp_and_arguments_go_through_loss_backward() -> None:
    network = Network()
    loss = loss_of(network, 1)
    optimizer_steps.backward(loss, network.parameters(), SingleDeviceStrategy("cpu"), retain_graph=True)
    first = network.transposed.grad.clone()
    optimizer_steps.backward(loss, network.parameters(), DDPStrategy())  # the graph was retained
    assert torch.equal(network.transposed.grad, 2 * first)
