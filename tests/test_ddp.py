"""2-process CPU DDP with the strategy a fit on two devices gets by default (gan_ddp, ``codecgan.strategy_choice``):
runs to completion, ranks end identical, and each trainable gradient is all-reduced exactly once per batch."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from tests.conftest import run_codecgan, tiny_trainer_overlay


@pytest.mark.slow
def test_two_process_ddp_fit_keeps_ranks_identical_and_reduces_each_gradient_once(tmp_path: Path) -> None:
    two_process_codec_fit(tmp_path)
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").exists()


def two_process_codec_fit(tmp_path: Path, model_init_args: dict | None = None) -> dict[str, torch.Tensor]:
    """A 4-batch ``codec_tiny`` fit on two CPU processes (two devices and no strategy get ``gan_ddp``) with
    ``model_init_args``, run in ``tmp_path / "run"``. Checks that both ranks end with the same state, tensor for
    tensor, and that each gradient was all-reduced once per batch; returns rank 0's state dict."""
    overlay = tiny_trainer_overlay(tmp_path / "run", max_steps=4, val_every=2, checkpoint_every=2)
    overlay["trainer"].update(devices=2)
    overlay["trainer"]["callbacks"] += [
        {"class_path": "tests.ddp_helpers.SaveRankWeights", "init_args": {"directory": str(tmp_path / "weights")}},
        {"class_path": "bench.allreduce_bytes.AllReduceBytes", "init_args": {"directory": str(tmp_path / "bytes")}},
    ]
    if model_init_args:
        overlay["model"] = {"init_args": model_init_args}
    run_codecgan("fit", "codec_tiny.yaml", tmp_path, "ddp", overlay)
    rank0 = torch.load(tmp_path / "weights" / "rank0.pt")
    rank1 = torch.load(tmp_path / "weights" / "rank1.pt")
    assert rank0.keys() == rank1.keys()
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), f"{name} differs between ranks"
    assert_each_gradient_reduced_once(tmp_path / "bytes")
    return rank0


def assert_each_gradient_reduced_once(directory: Path) -> None:
    """Gradient bytes all-reduced per batch equal the trainable parameters' bytes (the discriminator steps on every
    batch): one wrapper for both networks would reduce both in each of the two backwards, 2.00x."""
    for rank in (0, 1):
        counts = json.loads((directory / f"rank{rank}.json").read_text())
        ratio = counts["bytes"] / counts["batches"] / counts["trainable_bytes"]
        assert ratio == 1.0, f"rank {rank} all-reduced {ratio:.3f}x the trainable bytes per batch"


@pytest.mark.slow
def test_two_processes_score_each_validation_item_once_like_one_process(tmp_path: Path) -> None:
    """10 validation items, batch 3: 2 ranks get 5 items each (2 and 2 batches), nothing padded."""
    results = {}
    for devices in (1, 2):
        overlay = tiny_trainer_overlay(tmp_path / f"run{devices}")
        overlay["trainer"].update(devices=devices, strategy="gan_ddp", logger=False)
        overlay["trainer"]["callbacks"] = [
            {"class_path": "callbacks.SignalStats"},
            {
                "class_path": "tests.ddp_helpers.DumpValidationMetrics",
                "init_args": {"path": str(tmp_path / f"{devices}.json")},
            },
        ]
        overlay["data"]["init_args"].update(synthetic_items=[32, 10, 10], val_batch_size=3)
        run_codecgan("validate", "codec_tiny.yaml", tmp_path, f"validate{devices}", overlay)
        results[devices] = json.loads((tmp_path / f"{devices}.json").read_text())
    one, two = results[1], results[2]
    assert one.keys() == two.keys() and "val/snr_db" in one
    for key in one:
        assert math.isclose(one[key], two[key], rel_tol=1e-5, abs_tol=1e-6), (key, one[key], two[key])
    assert one["diag/val_clips"] == two["diag/val_clips"] == 10


@pytest.mark.slow
def test_discriminator_warmup_under_two_process_ddp_freezes_the_generator_on_both_ranks(tmp_path: Path) -> None:
    """``discriminator_warmup_steps: 2`` under gan_ddp: the generator's wrapper runs no backward for 2 batches (its
    forward is under no_grad), then both networks train; the ranks, fed different batches, stay identical."""
    overlay = tiny_trainer_overlay(tmp_path / "run", max_steps=4, val_every=4, checkpoint_every=4)
    overlay["trainer"].update(devices=2, strategy="gan_ddp")
    overlay["trainer"]["callbacks"] += [
        {"class_path": "tests.ddp_helpers.RecordNetworkWeights", "init_args": {"directory": str(tmp_path / "w")}}
    ]
    overlay["model"] = {"init_args": {"discriminator_warmup_steps": 2}}
    result = run_codecgan("fit", "codec_tiny.yaml", tmp_path, "warmup", overlay)
    ranks = [torch.load(tmp_path / "w" / f"rank{rank}.pt") for rank in (0, 1)]
    for name in ("generator", "discriminator"):
        assert ranks[0][name].shape[0] == 5, "the start and 4 batches"
        assert torch.equal(ranks[0][name], ranks[1][name]), f"the {name} differs between ranks"
    changed = {
        name: [not torch.equal(before, after) for before, after in zip(weights, weights[1:])]
        for name, weights in ranks[0].items()
    }
    assert changed == {"generator": [False, False, True, True], "discriminator": [True, True, True, True]}
    assert result.stderr.count("Discriminator warm-up: the generator stays frozen until step 2") == 1
