"""2-process CPU DDP where one rank raises: the job ends within 60 s with a non-zero status, leaves no process
behind, and leaves a whole ``on_exception.ckpt`` holding the weights of the step that failed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch

from tests.conftest import EXPERIMENTS, ROOT, tiny_trainer_overlay, write_overlay

FAILING_STEP = 3
DEADLINE_SECONDS = 60
MARKER = "CODECGAN_ONE_RANK_FAILURE_TEST"  # in the environment of every process the run starts


class SaveWeightsAtStep(L.Callback):
    """Each rank saves its weights at the start of ``step`` (listed before the fault, so it runs first)."""

    def __init__(self, directory: str, step: int) -> None:
        self.directory, self.step = Path(directory), step

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        if trainer.global_step == self.step:
            self.directory.mkdir(parents=True, exist_ok=True)
            torch.save(pl_module.state_dict(), self.directory / f"rank{trainer.global_rank}.pt")


def processes_started_by(marker: str) -> list[str]:
    """``pid state command`` of every process whose environment holds ``marker``, zombies aside: those have
    exited, and init reaps the ones whose parent is gone."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environment = (entry / "environ").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ")[:120].decode(errors="replace")
        except OSError:  # ended while we looked
            continue
        if marker.encode() in environment and state != "Z":
            found.append(f"{entry.name} {state} {command}")
    return found


def run_failing_fit(tmp_path: Path, base_config: str, overlay: dict) -> subprocess.CompletedProcess:
    """``codecgan fit`` in 2 processes; fails the test (and kills the run) if it outlives the deadline or leaves a
    process behind."""
    config = write_overlay(tmp_path, "one_rank_failure.yaml", overlay)
    marker = f"{MARKER}={tmp_path}"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", MARKER: str(tmp_path)}
    command = [
        sys.executable,
        "-m",
        "codecgan",
        "fit",
        "--config",
        str(EXPERIMENTS / base_config),
        "--config",
        str(config),
    ]
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        stdout, stderr = process.communicate(timeout=DEADLINE_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"The run was still going after {DEADLINE_SECONDS} s:\n{stderr[-3000:]}")
    leftovers = processes_started_by(marker)
    assert leftovers == [], f"processes left after the run ended: {leftovers}"
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def failing_overlay(run_dir: Path, failing_rank: int, weights_dir: Path) -> dict:
    overlay = tiny_trainer_overlay(run_dir, max_steps=8, val_every=50, checkpoint_every=50)
    overlay["trainer"].update(devices=2, strategy="gan_ddp")
    overlay["trainer"]["callbacks"] += [
        {"class_path": "codecgan.crash_checkpoint.CrashCheckpoint"},
        {
            "class_path": "tests.test_one_rank_failure.SaveWeightsAtStep",
            "init_args": {"directory": str(weights_dir), "step": FAILING_STEP},
        },
        {
            "class_path": "codecgan.testing.faults.RaiseOnRank",
            "init_args": {"rank": failing_rank, "step": FAILING_STEP},
        },
    ]
    return overlay


@pytest.mark.parametrize("failing_rank", [1, 0])
@pytest.mark.slow
def test_exception_on_one_rank_ends_the_job_with_a_checkpoint(tmp_path: Path, failing_rank: int) -> None:
    """Rank 1: it saves and exits while rank 0 waits in the discriminator's buffer broadcast. Rank 0: it saves and
    kills rank 1, which waits for it in that broadcast."""
    overlay = failing_overlay(tmp_path / "run", failing_rank, tmp_path / "weights")
    result = run_failing_fit(tmp_path, "codec_tiny.yaml", overlay)
    assert result.returncode != 0, result.stderr[-3000:]
    assert f"Injected failure on rank {failing_rank} at step {FAILING_STEP}." in result.stderr
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "on_exception.ckpt", weights_only=True)
    assert checkpoint["global_step"] == FAILING_STEP
    rank0, rank1 = (torch.load(tmp_path / "weights" / f"rank{rank}.pt", weights_only=True) for rank in (0, 1))
    assert checkpoint["state_dict"].keys() == rank0.keys()
    for name, value in checkpoint["state_dict"].items():
        assert torch.equal(value, rank0[name]) and torch.equal(value, rank1[name]), name


@pytest.mark.slow
def test_enhancer_crash_checkpoint_under_ddp_holds_no_pesq_lag_buffer(tmp_path: Path) -> None:
    """The enhancer all-gathers its PESQ-lag buffer when it saves; a crash checkpoint under DDP must not, since
    rank 0 waits in another collective. The buffer is left out, and the PESQ workers end with their rank."""
    overlay = failing_overlay(tmp_path / "run", 1, tmp_path / "weights")
    overlay["data"] = {
        "init_args": {"crop_seconds": 0.3, "val_crop_seconds": 1.0, "batch_size": 2, "synthetic_items": [16, 5, 5]}
    }
    overlay["model"] = {"init_args": {"pesq_workers": 1, "pesq_lag": 1}}
    result = run_failing_fit(tmp_path, "enhance_tiny.yaml", overlay)
    assert result.returncode != 0, result.stderr[-3000:]
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "on_exception.ckpt", weights_only=True)
    assert checkpoint["global_step"] == FAILING_STEP and "pesq_lag_buffer" not in checkpoint
    rank0 = torch.load(tmp_path / "weights" / "rank0.pt", weights_only=True)
    for name, value in checkpoint["state_dict"].items():
        assert torch.equal(value, rank0[name]), name
