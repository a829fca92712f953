"""2-process CPU DDP with the strategy the configs ship: runs to completion, ranks end identical."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from tests.conftest import EXPERIMENTS, ROOT, tiny_trainer_overlay, write_overlay


def test_two_process_ddp_fit_keeps_ranks_identical(tmp_path: Path) -> None:
    overlay = tiny_trainer_overlay(tmp_path / "run", max_steps=4, val_every=2, checkpoint_every=2)
    overlay["trainer"].update(devices=2, strategy="ddp_find_unused_parameters_true")
    overlay["trainer"]["callbacks"].append(
        {"class_path": "tests.ddp_helpers.SaveRankWeights", "init_args": {"directory": str(tmp_path / "weights")}}
    )
    config = write_overlay(tmp_path, "ddp.yaml", overlay)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "codecgan", "fit", "--config", str(EXPERIMENTS / "codec_tiny.yaml"), "--config", str(config)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rank0 = torch.load(tmp_path / "weights" / "rank0.pt")
    rank1 = torch.load(tmp_path / "weights" / "rank1.pt")
    assert rank0.keys() == rank1.keys()
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), f"{name} differs between ranks"
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").exists()
