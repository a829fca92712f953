"""A full disk or a kill during a save loses nothing: whole ``codecgan fit`` runs with a checkpoint write that
fails (ENOSPC), is interrupted by SIGTERM, or is killed (SIGKILL), each then resumed with ``--ckpt_path last``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from codecgan.checkpoint_resolution import checkpoint_damage
from codecgan.lightning_cli import EXIT_CHECKPOINT_WRITE_FAILED, EXIT_PREEMPTED, build_cli
from tests.checkpoint_faults import temporary_files
from tests.conftest import EXPERIMENTS, ROOT, tiny_trainer_overlay, write_overlay

# 8 batches, ModelCheckpoint every 3: writes 1 step3.ckpt, 2 last.ckpt, 3 step6.ckpt, 4 last.ckpt over the
# step-3 one, ...; a fault in write 4 hits the replacement of an existing last.ckpt.
MAX_STEPS = 8
CHECKPOINT_EVERY = 3
FAULTY_WRITE = 4


def fault_overlay(run_dir: Path, plugin: dict | None = None) -> dict:
    overlay = tiny_trainer_overlay(run_dir, max_steps=MAX_STEPS, val_every=50, checkpoint_every=CHECKPOINT_EVERY)
    overlay["trainer"]["callbacks"].append({"class_path": "codecgan.crash_checkpoint.CrashCheckpoint"})
    if plugin is not None:
        overlay["trainer"]["plugins"] = [plugin]
    return overlay


def fit_args(tmp_path: Path, name: str, overlay: dict) -> list[str]:
    return ["--config", str(EXPERIMENTS / "codec_tiny.yaml"), "--config", str(write_overlay(tmp_path, name, overlay))]


def fit_in_a_process(tmp_path: Path, plugin: dict) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    args = fit_args(tmp_path, "fault.yaml", fault_overlay(tmp_path / "run", plugin))
    command = [sys.executable, "-m", "codecgan", "fit", *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def resume_last(tmp_path: Path):
    return build_cli(
        ["fit", *fit_args(tmp_path, "resume.yaml", fault_overlay(tmp_path / "run")), "--ckpt_path", "last"]
    )


@pytest.fixture(scope="module")
def straight_state(tmp_path_factory) -> dict[str, torch.Tensor]:
    folder = tmp_path_factory.mktemp("straight")
    straight = build_cli(["fit", *fit_args(folder, "straight.yaml", fault_overlay(folder / "run"))])
    assert straight.trainer.global_step == MAX_STEPS
    return straight.model.state_dict()


def assert_equal_states(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert state.keys() == expected.keys()
    for name, value in state.items():
        assert torch.equal(value, expected[name]), name


@pytest.mark.slow
def test_a_full_disk_ends_the_run_with_its_status_and_resumes_from_the_previous_checkpoint(
    tmp_path: Path, straight_state
) -> None:
    plugin = {
        "class_path": "tests.checkpoint_faults.FullDiskCheckpointIO",
        "init_args": {"fail_from_write": FAULTY_WRITE},
    }
    failed = fit_in_a_process(tmp_path, plugin)

    folder = tmp_path / "run" / "checkpoints"
    assert failed.returncode == EXIT_CHECKPOINT_WRITE_FAILED, failed.stderr[-3000:]
    message = failed.stderr.strip().splitlines()[-1]
    assert message.startswith(f"codecgan: could not write the checkpoint {folder / 'last.ckpt'}: [Errno 28]")
    assert "Traceback" not in failed.stderr
    assert temporary_files(folder) == []
    # The step-6 last.ckpt was never written, and the crash checkpoint hit the same full disk.
    assert sorted(path.name for path in folder.iterdir()) == ["last.ckpt", "step3.ckpt", "step6.ckpt"]
    last = torch.load(folder / "last.ckpt", weights_only=True)
    assert last["global_step"] == CHECKPOINT_EVERY
    assert_equal_states(last["state_dict"], torch.load(folder / "step3.ckpt", weights_only=True)["state_dict"])

    resumed = resume_last(tmp_path)
    assert resumed.trainer.ckpt_path == str(folder / "last.ckpt")
    assert resumed.trainer.global_step == MAX_STEPS
    assert_equal_states(resumed.model.state_dict(), straight_state)


@pytest.mark.slow
def test_sigterm_during_a_save_exits_143_with_whole_checkpoints_and_resumes(tmp_path: Path, straight_state) -> None:
    plugin = {
        "class_path": "tests.checkpoint_faults.SignalMidWriteCheckpointIO",
        "init_args": {"at_write": FAULTY_WRITE},
    }
    killed = fit_in_a_process(tmp_path, plugin)

    folder = tmp_path / "run" / "checkpoints"
    assert killed.returncode == EXIT_PREEMPTED, killed.stderr[-3000:]
    assert temporary_files(folder) == []
    names = sorted(path.name for path in folder.iterdir())
    assert names == ["last.ckpt", "on_exception.ckpt", "step3.ckpt", "step6.ckpt"]
    for name in names:
        assert checkpoint_damage(folder / name) is None
        torch.load(folder / name, weights_only=True)
    # Lightning finishes the batch whose save the signal interrupted, then stops: both files hold step 6.
    assert torch.load(folder / "on_exception.ckpt", weights_only=True)["global_step"] == 2 * CHECKPOINT_EVERY

    resumed = resume_last(tmp_path)
    assert resumed.trainer.global_step == MAX_STEPS
    assert_equal_states(resumed.model.state_dict(), straight_state)


@pytest.mark.slow
def test_sigkill_during_a_save_keeps_the_previous_checkpoint_and_resume_cleans_up(
    tmp_path: Path, straight_state
) -> None:
    plugin = {
        "class_path": "tests.checkpoint_faults.SignalMidWriteCheckpointIO",
        "init_args": {"at_write": FAULTY_WRITE, "signal_name": "SIGKILL"},
    }
    killed = fit_in_a_process(tmp_path, plugin)

    folder = tmp_path / "run" / "checkpoints"
    assert killed.returncode == -9, killed.stderr[-3000:]
    leftovers = temporary_files(folder)
    assert len(leftovers) == 1 and leftovers[0].startswith("last.ckpt.")
    assert torch.load(folder / "last.ckpt", weights_only=True)["global_step"] == CHECKPOINT_EVERY

    resumed = resume_last(tmp_path)
    assert temporary_files(folder) == []
    assert resumed.trainer.global_step == MAX_STEPS
    assert_equal_states(resumed.model.state_dict(), straight_state)
