"""DiscriminatorUpdateMeter on hand-made steps: the ratio sqrt(Σ‖Δθ‖² / Σ‖θ‖²) over the steps since the last read, and
its cost of four foreach ops per step."""

from __future__ import annotations

import math

import pytest
import torch

from bench.dispatch_counts import counting_ops
from codecgan.discriminator_update_meter import DiscriminatorUpdateMeter


def parameters() -> list[torch.Tensor]:
    """Two tensors, ‖θ‖² = 9 + 16 = 25."""
    return [torch.nn.Parameter(torch.tensor([3.0, 0.0])), torch.nn.Parameter(torch.tensor([[0.0], [4.0]]))]


def step(params: list[torch.Tensor], deltas: list[list[float]]) -> None:
    with torch.no_grad():
        for param, delta in zip(params, deltas):
            param.add_(torch.tensor(delta).view_as(param))


def test_one_step_gives_the_update_norm_over_the_weight_norm() -> None:
    meter, params = DiscriminatorUpdateMeter(), parameters()
    assert meter.read() is None  # no step measured yet
    with meter.measuring(params):
        step(params, [[0.0, 0.3], [0.4, 0.0]])  # ‖Δθ‖ = 0.5; θ after: [3, 0.3], [0.4, 4]
    after = math.sqrt(9 + 0.09 + 0.16 + 16)
    assert meter.read() == pytest.approx(0.5 / after, rel=1e-6)


def test_the_ratio_covers_every_step_since_the_last_read_then_starts_again() -> None:
    meter, params = DiscriminatorUpdateMeter(), parameters()
    with meter.measuring(params):
        step(params, [[0.0, 0.0], [0.0, 1.0]])  # θ after: ‖θ‖² = 9 + 25 = 34
    with meter.measuring(params):
        pass  # a skipped step: a zero update, its weights still counted (34 again)
    with meter.measuring(params):
        step(params, [[1.0, 0.0], [0.0, 0.0]])  # θ after: 16 + 25 = 41
    assert meter.read() == pytest.approx(math.sqrt((1.0 + 1.0) / (34 + 34 + 41)), rel=1e-6)
    assert meter.read() is None  # nothing measured since: no ratio
    with meter.measuring(params):
        step(params, [[0.0, 2.0], [0.0, 0.0]])  # ‖Δθ‖² = 4; θ after: 16 + 4 + 25 = 45
    assert meter.read() == pytest.approx(math.sqrt(4 / 45), rel=1e-6)


def test_a_frozen_discriminator_reads_zero() -> None:
    meter, params = DiscriminatorUpdateMeter(), parameters()
    for _ in range(3):
        with meter.measuring(params):
            pass
    assert meter.read() == 0.0


def test_a_step_costs_four_foreach_ops_whatever_the_number_of_tensors() -> None:
    meter = DiscriminatorUpdateMeter()
    params = [torch.nn.Parameter(torch.randn(3, 3)) for _ in range(20)]
    with meter.measuring(params):  # the first step also makes the sums
        pass
    with counting_ops() as counted, meter.measuring(params):
        pass
    assert sum(counted.outside.values()) == 4, counted.outside
    assert all("_foreach_" in op for op in counted.outside), counted.outside
