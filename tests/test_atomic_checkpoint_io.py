"""Checkpoint writes replace a file whole or leave it as it was, and say why and what to do when they fail."""

from __future__ import annotations

import errno
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from codecgan.atomic_checkpoint_io import AtomicCheckpointIO, CheckpointWriteError, replace_atomically
from codecgan.lightning_cli import build_cli
from tests.checkpoint_faults import FullDiskCheckpointIO, temporary_files
from tests.conftest import EXPERIMENTS, ROOT, tiny_trainer_overlay, write_overlay


def checkpoint(step: int) -> dict:
    return {"global_step": step, "state_dict": {"weight": torch.full((1000,), float(step))}}


@pytest.mark.parametrize("error_name", ["ENOSPC", "EIO"])
def test_a_failed_write_leaves_the_previous_file_whole_and_no_temporary(tmp_path: Path, error_name: str) -> None:
    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint(checkpoint(3), path)
    before = path.read_bytes()

    with pytest.raises(CheckpointWriteError) as raised:
        FullDiskCheckpointIO(fail_from_write=1, error_name=error_name).save_checkpoint(checkpoint(6), path)

    assert raised.value.error.errno == getattr(errno, error_name)
    message = str(raised.value)
    for part in (str(path), os.strerror(getattr(errno, error_name)), "MB free", "dirpath", "--ckpt_path last"):
        assert part in message
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]


def test_a_real_file_size_limit_is_reported_and_leaves_the_previous_file(tmp_path: Path) -> None:
    # A write refused by the kernel, without a mount: RLIMIT_FSIZE makes write() fail with EFBIG past the limit.
    path = tmp_path / "last.ckpt"
    torch.save(checkpoint(3), path)
    before = path.read_bytes()
    script = (
        "import torch, sys\n"
        "from pathlib import Path\n"
        "from codecgan.atomic_checkpoint_io import AtomicCheckpointIO, CheckpointWriteError\n"
        "try:\n"
        "    AtomicCheckpointIO().save_checkpoint({'w': torch.zeros(1 << 20)}, Path(sys.argv[1]))\n"
        "except CheckpointWriteError as error:\n"
        "    print(error.error.errno)\n"
    )

    def limit_file_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (len(before) + 100_000, resource.RLIM_INFINITY))

    result = subprocess.run(
        [sys.executable, "-c", script, str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=limit_file_size,
    )
    assert result.stdout.strip() == str(errno.EFBIG), result.stderr[-2000:]
    assert path.read_bytes() == before
    assert temporary_files(tmp_path) == []


@pytest.fixture
def full_size_file_system(tmp_path: Path):
    """A 1 MB tmpfs mounted at ``tmp_path / "small"``; skips the test where mounting is not allowed (not root)."""
    folder = tmp_path / "small"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def test_a_really_full_disk_leaves_the_previous_file(full_size_file_system: Path) -> None:
    path = full_size_file_system / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"w": torch.zeros(100_000)}, path)  # 400 kB of the 1 MB
    before = path.read_bytes()
    with pytest.raises(CheckpointWriteError) as raised:
        AtomicCheckpointIO().save_checkpoint({"w": torch.ones(200_000)}, path)  # 800 kB more do not fit
    assert raised.value.error.errno == errno.ENOSPC
    assert path.read_bytes() == before
    assert temporary_files(full_size_file_system) == []


def test_an_interrupted_write_removes_its_temporary_and_is_not_wrapped(tmp_path: Path) -> None:
    path = tmp_path / "last.ckpt"
    path.write_bytes(b"previous")

    def write_then_interrupt(temporary: Path) -> None:
        temporary.write_bytes(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        replace_atomically(path, write_then_interrupt)
    assert path.read_bytes() == b"previous"
    assert temporary_files(tmp_path) == []


def test_an_atomic_write_replaces_the_file_with_the_umasks_mode(tmp_path: Path) -> None:
    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint(checkpoint(3), path)
    AtomicCheckpointIO().save_checkpoint(checkpoint(6), path)
    assert torch.load(path, weights_only=True)["global_step"] == 6
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # readable by the group, as torch.save's files are


def test_codecgan_fit_writes_checkpoints_atomically_unless_the_config_names_a_plugin(tmp_path: Path) -> None:
    overlay = write_overlay(tmp_path, "base.yaml", tiny_trainer_overlay(tmp_path / "run"))
    base = ["--config", str(EXPERIMENTS / "codec_tiny.yaml"), "--config", str(overlay)]
    assert type(build_cli(base, run=False).trainer.strategy.checkpoint_io) is AtomicCheckpointIO
    plugin = {"class_path": "tests.checkpoint_faults.FullDiskCheckpointIO", "init_args": {"fail_from_write": 9}}
    named = write_overlay(tmp_path, "b.yaml", {"trainer": {"plugins": [plugin]}})
    assert type(build_cli([*base, "--config", str(named)], run=False).trainer.strategy.checkpoint_io) is (
        FullDiskCheckpointIO
    )
