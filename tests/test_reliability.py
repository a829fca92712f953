"""Nothing lost on a crash: non-finite steps are skipped, exceptions and SIGTERM leave a checkpoint."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch

from codecgan.checkpoint_resolution import resolve_ckpt_path
from codecgan.lightning_cli import EXIT_PREEMPTED, build_cli
from codecgan.nonfinite_guard import NonFiniteTrainingError
from codecgan.testing.faults import NonFiniteFault, RaiseAtStep
from tests.conftest import EXPERIMENTS, ROOT, tiny_trainer_overlay, write_overlay


class WeightsAroundStep(L.Callback):
    """Copies of the weights before and after one step."""

    def __init__(self, step: int) -> None:
        self.step = step
        self.before: dict[str, torch.Tensor] = {}
        self.after: dict[str, torch.Tensor] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            self.before = {k: v.clone() for k, v in pl_module.state_dict().items()}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step + 1:
            self.after = {k: v.clone() for k, v in pl_module.state_dict().items()}


def cli_for(tmp_path: Path, max_steps: int, *extra: str, **data: object):
    overlay = tiny_trainer_overlay(tmp_path / "run", max_steps=max_steps, val_every=50, checkpoint_every=50)
    overlay["trainer"]["callbacks"].append({"class_path": "codecgan.crash_checkpoint.CrashCheckpoint"})
    overlay["data"]["init_args"].update(data)
    config = write_overlay(tmp_path, "overlay.yaml", overlay)
    return build_cli(["--config", str(EXPERIMENTS / "codec_tiny.yaml"), "--config", str(config), *extra], run=False)


def test_nonfinite_output_skips_both_steps_and_training_continues(tmp_path: Path) -> None:
    cli = cli_for(tmp_path, 6)
    watch = WeightsAroundStep(3)
    cli.trainer.callbacks += [NonFiniteFault([3], target="estimate"), watch]
    cli.trainer.fit(cli.model, cli.datamodule)
    assert cli.trainer.global_step == 6
    assert int(cli.model.nonfinite_steps) == 1 and int(cli.model.nonfinite_in_a_row) == 0
    for name, value in watch.before.items():
        if name.startswith(("generator.", "discriminator.")):
            assert torch.equal(value, watch.after[name]), f"{name} changed on the non-finite step"


@pytest.mark.parametrize("target", ["loss_g", "loss_d"])
def test_nonfinite_loss_skips_its_network_only(tmp_path: Path, target: str) -> None:
    cli = cli_for(tmp_path, 4)
    watch = WeightsAroundStep(2)
    cli.trainer.callbacks += [NonFiniteFault([2], target=target), watch]
    cli.trainer.fit(cli.model, cli.datamodule)
    skipped = "generator." if target == "loss_g" else "discriminator."
    stepped = "discriminator." if target == "loss_g" else "generator."
    assert all(torch.equal(v, watch.after[k]) for k, v in watch.before.items() if k.startswith(skipped))
    assert any(not torch.equal(v, watch.after[k]) for k, v in watch.before.items() if k.startswith(stepped))
    assert int(cli.model.nonfinite_steps) == 1


def test_nonfinite_in_a_row_stops_with_a_checkpoint_of_the_last_finite_state(tmp_path: Path) -> None:
    cli = cli_for(tmp_path, 10, "--model.init_args.max_nonfinite_in_a_row", "3")
    watch = WeightsAroundStep(2)
    cli.trainer.callbacks += [NonFiniteFault([2, 3, 4], target="estimate"), watch]
    with pytest.raises(NonFiniteTrainingError, match="3 batches in a row"):
        cli.trainer.fit(cli.model, cli.datamodule)
    saved = torch.load(tmp_path / "run" / "checkpoints" / "on_exception.ckpt", weights_only=True)["state_dict"]
    for name, value in watch.before.items():
        if name.startswith(("generator.", "discriminator.")):
            assert torch.equal(saved[name], value), name


def test_exception_in_seventh_step_leaves_checkpoint_and_no_worker_processes(tmp_path: Path) -> None:
    cli = cli_for(tmp_path, 20, num_workers=2)
    cli.trainer.callbacks.append(RaiseAtStep(6))
    with pytest.raises(RuntimeError, match="Injected failure at step 6"):
        cli.trainer.fit(cli.model, cli.datamodule)
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "on_exception.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 6
    assert multiprocessing.active_children() == []


@pytest.mark.slow
def test_sigterm_saves_exits_nonzero_and_resumes_to_the_straight_result(tmp_path: Path) -> None:
    (tmp_path / "straight").mkdir()
    straight = cli_for(tmp_path / "straight", 8)
    straight.trainer.fit(straight.model, straight.datamodule)

    overlay = tiny_trainer_overlay(tmp_path / "run", max_steps=8, val_every=50, checkpoint_every=50)
    overlay["trainer"]["callbacks"] += [
        {"class_path": "codecgan.crash_checkpoint.CrashCheckpoint"},
        {"class_path": "codecgan.testing.faults.SignalAtStep", "init_args": {"step": 3}},
    ]
    config = write_overlay(tmp_path, "sigterm.yaml", overlay)
    command = [
        sys.executable,
        "-m",
        "codecgan",
        "fit",
        "--config",
        str(EXPERIMENTS / "codec_tiny.yaml"),
        "--config",
        str(config),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    killed = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert killed.returncode == EXIT_PREEMPTED, killed.stderr[-2000:]
    assert (tmp_path / "run" / "checkpoints" / "on_exception.ckpt").exists()

    resumed = cli_for(tmp_path, 8)
    resumed.trainer.fit(resumed.model, resumed.datamodule, ckpt_path=resolve_ckpt_path("last", resumed.trainer))
    assert resumed.trainer.global_step == 8
    straight_state = straight.model.state_dict()
    for name, value in resumed.model.state_dict().items():
        assert torch.equal(value, straight_state[name]), name
