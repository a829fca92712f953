"""EMA codebooks: exact resume from the state dict, restart counts, eval mode never updates."""

from __future__ import annotations

import torch

from codecgan.models.ema_quantizer import EMAResidualVectorQuantizer


def steps(quantizer: EMAResidualVectorQuantizer, seed: int, count: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [quantizer(torch.randn(2, 8, 16, generator=generator)).z_q for _ in range(count)]


def test_a_state_dict_round_trip_continues_bit_identically() -> None:
    torch.manual_seed(0)
    quantizer = EMAResidualVectorQuantizer(8, 3, 16, kmeans_init=True, kmeans_iterations=3).train()
    steps(quantizer, 1, 3)
    state, rng = {k: v.clone() for k, v in quantizer.state_dict().items()}, torch.get_rng_state()
    continued = steps(quantizer, 2, 3) + [quantizer.state_dict()]
    resumed_quantizer = EMAResidualVectorQuantizer(8, 3, 16, kmeans_init=True, kmeans_iterations=3).train()
    resumed_quantizer.load_state_dict(state)
    torch.set_rng_state(rng)
    resumed = steps(resumed_quantizer, 2, 3) + [resumed_quantizer.state_dict()]
    for a, b in zip(continued[:3], resumed[:3]):
        assert torch.equal(a, b)
    assert continued[3].keys() == resumed[3].keys()
    assert all(torch.equal(continued[3][key], resumed[3][key]) for key in continued[3])


def test_restarts_count_dead_codes_and_move_them_into_the_batch() -> None:
    torch.manual_seed(0)
    quantizer = EMAResidualVectorQuantizer(8, 1, 16, kmeans_init=False, dead_code_threshold=2.0).train()
    x = torch.randn(2, 8, 16) + 10.0  # far from the Kaiming-uniform codes: all are dead at the start
    quantizer(x)
    assert quantizer.dead_code_restarts.tolist() == [16]  # cluster sizes start at 0
    vectors = x.transpose(1, 2).reshape(-1, 8)
    embed = quantizer.codebooks[0].embed
    assert all((vectors == row).all(1).any() for row in embed)


def test_eval_mode_leaves_the_codebooks_unchanged() -> None:
    quantizer = EMAResidualVectorQuantizer(8, 2, 16, kmeans_init=False).eval()
    before = {k: v.clone() for k, v in quantizer.state_dict().items()}
    quantizer(torch.randn(2, 8, 16))
    assert all(torch.equal(before[k], v) for k, v in quantizer.state_dict().items())
