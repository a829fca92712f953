"""EMA codebooks: exact resume from the state dict, restart counts, eval mode never updates."""

from __future__ import annotations

import pytest
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


def _train_one_rank(rank: int, world_size: int, init_file: str, result_dir: str) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    torch.manual_seed(0)  # the same initial codebooks; the batches and restart draws differ per rank
    quantizer = EMAResidualVectorQuantizer(8, 2, 16, kmeans_init=True, kmeans_iterations=3).train()
    torch.manual_seed(100 + rank)
    codes = [quantizer(torch.randn(2, 8, 16) + rank).codes for _ in range(4)]
    torch.save({"state": quantizer.state_dict(), "codes": codes}, f"{result_dir}/rank{rank}.pt")
    torch.distributed.destroy_process_group()


@pytest.mark.slow  # two processes: about 5 s
def test_ranks_keep_identical_codebooks_under_ddp(tmp_path) -> None:
    """Different batches per rank, restarts and k-means included: the all-reduced EMA statistics and the broadcast
    k-means result and restart vectors leave every rank with the same codebooks."""
    torch.multiprocessing.spawn(_train_one_rank, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    rank0, rank1 = (torch.load(tmp_path / f"rank{rank}.pt", weights_only=True) for rank in (0, 1))
    assert all(torch.equal(rank0["state"][key], rank1["state"][key]) for key in rank0["state"])
    assert not torch.equal(rank0["codes"][-1], rank1["codes"][-1])  # the ranks did see different data


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_training_steps_read_nothing_back_to_the_host_after_kmeans() -> None:
    quantizer = EMAResidualVectorQuantizer(8, 3, 16, kmeans_init=True, kmeans_iterations=3).cuda().train()
    quantizer(torch.randn(2, 8, 16, device="cuda"))  # k-means reads, once
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            latents = torch.randn(2, 8, 16, device="cuda", requires_grad=True)
            quantizer(latents).commitment_loss.backward()
            quantizer.dead_code_restarts.sum()
    finally:
        torch.cuda.set_sync_debug_mode("default")
