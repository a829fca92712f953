"""The fault injectors the failure zoo's overlays use (codecgan/testing/faults.py)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from codecgan.models import CMGANGenerator
from codecgan.testing.faults import LossSpikeFault, PerturbRankParameters


class TwoNetworks(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.generator, self.discriminator = nn.Linear(4, 4), nn.Linear(4, 1)


def snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.clone() for name, value in module.state_dict().items()}


@pytest.mark.parametrize(("rank", "step", "perturbed"), [(1, 5, True), (0, 5, False), (1, 4, False)])
def test_perturb_rank_parameters_touches_one_rank_one_step_one_module(rank: int, step: int, perturbed: bool) -> None:
    torch.manual_seed(0)
    module, fault = TwoNetworks(), PerturbRankParameters(rank=1, step=5, module="discriminator", scale=1e-3)
    before = snapshot(module)
    fault.on_train_batch_start(SimpleNamespace(global_rank=rank, global_step=step), module, None, 0)
    after = snapshot(module)
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("generator."))
    changed = [not torch.equal(before[k], after[k]) for k in before if k.startswith("discriminator.")]
    assert all(changed) if perturbed else not any(changed)
    if perturbed:
        relative = (after["discriminator.weight"] / before["discriminator.weight"] - 1).abs()
        assert 0 < relative.max() < 5e-3  # about scale x N(0, 1)


def test_perturb_rank_parameters_names_a_missing_module() -> None:
    fault = PerturbRankParameters(rank=0, step=0, module="critic")
    with pytest.raises(ValueError, match="'critic' is not one of the module's children"):
        fault.on_train_batch_start(SimpleNamespace(global_rank=0, global_step=0), TwoNetworks(), None, 0)


@pytest.mark.parametrize("kwargs", [dict(scale=0.0), dict(rank=-1), dict(step=-2)])
def test_perturb_rank_parameters_rejects_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="PerturbRankParameters"):
        PerturbRankParameters(**kwargs)


class Forwarding(nn.Module):
    """A module with a generator_forward that returns a fixed estimate, at a settable step."""

    def __init__(self) -> None:
        super().__init__()
        self.global_step = 0

    def generator_forward(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"estimate": batch.clone(), "reference": batch}


@pytest.mark.parametrize(("step", "training", "factor"), [(5, True, 100.0), (6, True, 1.0), (5, False, 1.0)])
def test_loss_spike_fault_scales_the_estimate_on_its_training_steps(step: int, training: bool, factor: float) -> None:
    module = Forwarding().train(training)
    LossSpikeFault(steps=[5, 9], scale=100.0).setup(None, module, "fit")
    module.global_step = step
    batch = torch.full((1, 1, 4), 0.5)
    forward = module.generator_forward(batch)
    assert torch.equal(forward["estimate"], batch * factor) and torch.equal(forward["reference"], batch)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(steps=[]), r"steps must be a non-empty list of integers >= 0, got \[\]"),
        (dict(steps=[3, -1]), r"steps must be a non-empty list of integers >= 0, got \[3, -1\]"),
        (dict(steps=[3], scale=1.0), "scale must be a finite number greater than 1, got 1.0"),
        (dict(steps=[3], scale=math.inf), "scale must be a finite number greater than 1, got inf"),
    ],
)
def test_loss_spike_fault_names_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match="LossSpikeFault " + message):
        LossSpikeFault(**kwargs)


def test_cmgan_match_length_false_returns_the_istft_length() -> None:
    # The istft_length_mismatch zoo switch: without cutting/padding, 1234 samples come back as 100 * (1234 // 100).
    torch.manual_seed(0)
    tiny = dict(channels=4, num_blocks=1, attention_heads=2, dense_depth=1, dropout=0.0)
    noisy = torch.randn(2, 1, 1234) * 0.1
    assert CMGANGenerator(**tiny).eval()(noisy).audio.shape[-1] == 1234
    assert CMGANGenerator(**tiny, match_length=False).eval()(noisy).audio.shape[-1] == 1200
