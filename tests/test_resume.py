"""Resume: stop after N batches, ``--ckpt_path last``, continue to 2N == a straight 2N-batch run, bitwise."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from codecgan.lightning_cli import build_cli
from tests.conftest import EXPERIMENTS, tiny_trainer_overlay, write_overlay


def fit(tmp_path: Path, run: str, max_steps: int, ckpt_path: str | None = None, num_workers: int = 0, extra=()):
    overlay = tiny_trainer_overlay(tmp_path / run, max_steps=max_steps, val_every=4, checkpoint_every=5)
    overlay["data"]["init_args"]["num_workers"] = num_workers
    args = [
        "fit",
        "--config",
        str(EXPERIMENTS / "codec_tiny.yaml"),
        "--config",
        str(write_overlay(tmp_path, f"{run}.yaml", overlay)),
    ]
    if ckpt_path:
        args += ["--ckpt_path", ckpt_path]
    return build_cli([*args, *extra])


@pytest.mark.parametrize(
    ("break_at", "num_workers"), [(5, 0), (8, 0), (5, 1)], ids=["mid-epoch", "epoch-end", "mid-epoch-worker"]
)
@pytest.mark.slow
def test_resume_equals_straight_run(tmp_path: Path, break_at: int, num_workers: int) -> None:
    # 32 items / batch 4 = 8 batches per epoch: 5 is mid-epoch 0, 8 its last batch; 10 is in epoch 1.
    straight = fit(tmp_path, "straight", max_steps=10, num_workers=num_workers)
    first = fit(tmp_path, "resumed", max_steps=break_at, num_workers=num_workers)
    assert first.trainer.global_step == break_at  # one count per batch, not per optimizer step
    resumed = fit(tmp_path, "resumed", max_steps=10, ckpt_path="last", num_workers=num_workers)

    assert straight.trainer.global_step == resumed.trainer.global_step == 10
    straight_state = straight.model.state_dict()
    for name, value in resumed.model.state_dict().items():
        assert torch.equal(value, straight_state[name]), f"{name} differs after resume"
    for straight_opt, resumed_opt in zip(straight.trainer.optimizers, resumed.trainer.optimizers):
        assert straight_opt.state_dict()["state"].keys() == resumed_opt.state_dict()["state"].keys()
        for a, b in zip(straight_opt.state_dict()["state"].values(), resumed_opt.state_dict()["state"].values()):
            assert torch.equal(a["step"], b["step"]) and torch.equal(a["exp_avg_sq"], b["exp_avg_sq"])
    for a, b in zip(straight.trainer.lr_scheduler_configs, resumed.trainer.lr_scheduler_configs):
        assert a.scheduler.state_dict() == b.scheduler.state_dict()


def test_ckpt_path_last_without_checkpoint_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no checkpoint to resume from"):
        fit(tmp_path, "fresh", max_steps=2, ckpt_path="last")
