"""The enhancer under 2-process CPU DDP (gan_ddp, the default for two devices): ranks stay identical with
rank-different PESQ failures, every rank's PESQ-lag buffer is checkpointed, and validation PESQ equals the
one-process value."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from tests.conftest import run_codecgan, tiny_trainer_overlay
from tests.test_ddp import assert_each_gradient_reduced_once


def enhance_overlay(run_dir: Path, devices: int, **trainer) -> dict:
    overlay = tiny_trainer_overlay(run_dir, max_steps=4, val_every=2, checkpoint_every=2)
    overlay["trainer"].update(devices=devices, **trainer)  # no strategy: fit on two devices gets gan_ddp
    overlay["data"] = {
        "init_args": {
            "crop_seconds": 0.3,
            "val_crop_seconds": 1.0,
            "batch_size": 2,
            "synthetic_items": [16, 5, 5],
            "silent_item_fraction": 0.25,
        }
    }
    overlay["model"] = {"init_args": {"pesq_workers": 1, "pesq_lag": 1}}
    return overlay


@pytest.mark.slow
def test_ranks_stay_identical_and_every_ranks_lag_buffer_is_checkpointed(tmp_path):
    overlay = enhance_overlay(tmp_path / "run", devices=2)
    overlay["trainer"]["callbacks"] += [
        {"class_path": "tests.ddp_helpers.SaveRankWeights", "init_args": {"directory": str(tmp_path / "weights")}},
        {"class_path": "bench.allreduce_bytes.AllReduceBytes", "init_args": {"directory": str(tmp_path / "bytes")}},
    ]
    run_codecgan("fit", "enhance_tiny.yaml", tmp_path, "ddp", overlay)
    assert_each_gradient_reduced_once(tmp_path / "bytes")
    rank0, rank1 = (torch.load(tmp_path / "weights" / f"rank{rank}.pt") for rank in (0, 1))
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), f"{name} differs between ranks"
    buffer = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)["pesq_lag_buffer"]
    assert buffer["scores"].shape == (2, 2) and buffer["clean_magnitude"].shape[:2] == (2, 2)
    assert not torch.equal(buffer["clean_magnitude"][0], buffer["clean_magnitude"][1])  # each rank's own batch


@pytest.mark.slow
def test_drop_batch_skips_the_discriminator_update_on_every_rank_when_one_rank_lost_a_target(tmp_path):
    overlay = enhance_overlay(tmp_path / "run", devices=2, max_steps=6)
    overlay["model"]["init_args"].update(pesq_failure_policy="drop_batch", pesq_lag=0)
    overlay["trainer"]["callbacks"] += [
        {"class_path": "tests.ddp_helpers.SaveRankWeights", "init_args": {"directory": str(tmp_path / "weights")}},
        {
            "class_path": "tests.ddp_helpers.RecordDiscriminatorSkips",
            "init_args": {"directory": str(tmp_path / "skips")},
        },
    ]
    run_codecgan("fit", "enhance_tiny.yaml", tmp_path, "drop_batch", overlay)
    rank0, rank1 = (json.loads((tmp_path / "skips" / f"rank{rank}.json").read_text()) for rank in (0, 1))
    assert any(a[0] != b[0] for a, b in zip(rank0, rank1)), "no batch lost a target on one rank only"
    for (dropped0, skipped0), (dropped1, skipped1) in zip(rank0, rank1):
        assert skipped0 == skipped1 == max(dropped0, dropped1)
    weights = [torch.load(tmp_path / "weights" / f"rank{rank}.pt") for rank in (0, 1)]
    for name in weights[0]:
        assert torch.equal(weights[0][name], weights[1][name]), f"{name} differs between ranks"


@pytest.mark.slow
def test_validation_pesq_is_the_same_on_one_and_two_processes(tmp_path):
    """5 validation items (one silent) on 2 ranks: 3 + 2 items, none padded or counted twice."""
    results = {}
    for devices in (1, 2):
        overlay = enhance_overlay(tmp_path / f"run{devices}", devices=devices, logger=False)
        dump = {"path": str(tmp_path / f"{devices}.json")}
        overlay["trainer"]["callbacks"] = [{"class_path": "tests.ddp_helpers.DumpValidationMetrics", "init_args": dump}]
        run_codecgan("validate", "enhance_tiny.yaml", tmp_path, f"validate{devices}", overlay)
        results[devices] = json.loads((tmp_path / f"{devices}.json").read_text())
    one, two = results[1], results[2]
    assert one["val/pesq_failed_clips"] == two["val/pesq_failed_clips"] == 1.0
    for key in ("val/pesq", "val/stoi", "val/stoi_failed_clips"):
        assert math.isclose(one[key], two[key], rel_tol=1e-5), (key, one[key], two[key])
