"""``--ckpt_path last``/``auto`` resume the newest whole checkpoint and name every damaged one they skip."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from codecgan.checkpoint_resolution import checkpoint_damage, resolve_ckpt_path
from codecgan.config_error import ConfigError


def checkpoint(step: int) -> dict:
    return {"global_step": step, "state_dict": {"weight": torch.full((1000,), float(step))}}


def trainer_for(folder: Path) -> L.Trainer:
    return L.Trainer(
        default_root_dir=folder,
        callbacks=[ModelCheckpoint(dirpath=folder / "checkpoints")],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )


def write_checkpoint(path: Path, step: int, age_seconds: int, keep_bytes: int | None = None) -> None:
    """A checkpoint ``age_seconds`` old, cut to its first ``keep_bytes`` bytes when given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint(step), path)
    if keep_bytes is not None:
        path.write_bytes(path.read_bytes()[:keep_bytes])
    modified = path.stat().st_mtime - age_seconds
    os.utime(path, (modified, modified))


@pytest.mark.parametrize("fraction", [0.0, 0.01, 0.5, 0.99])
def test_a_checkpoint_cut_short_anywhere_is_damaged_and_a_whole_one_is_not(tmp_path: Path, fraction: float) -> None:
    path = tmp_path / "last.ckpt"
    write_checkpoint(path, 3, 0)
    assert checkpoint_damage(path) is None
    size = path.stat().st_size
    cut = min(int(size * fraction), size - 1)
    path.write_bytes(path.read_bytes()[:cut])
    assert "not a whole zip archive" in checkpoint_damage(path)


def test_a_zip_that_torch_did_not_write_is_damaged(tmp_path: Path) -> None:
    path = tmp_path / "last.ckpt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes.txt", "hello")
    assert "no data.pkl" in checkpoint_damage(path)


@pytest.mark.parametrize("mode", ["last", "auto"])
def test_resume_skips_a_cut_checkpoint_for_the_newest_whole_one_and_says_so(tmp_path: Path, mode: str) -> None:
    folder = tmp_path / "checkpoints"
    write_checkpoint(folder / "on_exception.ckpt", 3, age_seconds=60)
    write_checkpoint(folder / "hpc_ckpt_1.ckpt", 2, age_seconds=120)
    write_checkpoint(folder / "last.ckpt", 6, age_seconds=0, keep_bytes=1000)
    with pytest.warns(UserWarning, match="last.ckpt is not a whole zip archive.*resuming from .*on_exception.ckpt"):
        assert resolve_ckpt_path(mode, trainer_for(tmp_path)) == str(folder / "on_exception.ckpt")


def test_resume_with_only_damaged_checkpoints_names_them(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoints"
    write_checkpoint(folder / "last.ckpt", 6, age_seconds=0, keep_bytes=1000)
    write_checkpoint(folder / "on_exception.ckpt", 3, age_seconds=60, keep_bytes=0)
    (folder / "last-v1.ckpt").symlink_to(folder / "gone.ckpt")  # ModelCheckpoint(save_last="link"), target deleted
    trainer = trainer_for(tmp_path)
    with pytest.raises(FileNotFoundError, match="no whole checkpoint") as raised:
        resolve_ckpt_path("last", trainer)
    for name in ("last.ckpt", "on_exception.ckpt", "last-v1.ckpt"):
        assert str(folder / name) in str(raised.value)
    with pytest.warns(UserWarning, match="no whole checkpoint.*last.ckpt.*starting a fresh run"):
        assert resolve_ckpt_path("auto", trainer) is None


def test_an_explicit_damaged_ckpt_path_fails_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "epoch=3.ckpt"
    write_checkpoint(path, 3, age_seconds=0, keep_bytes=500)
    with pytest.raises(ConfigError, match=r"ckpt_path: .*epoch=3.ckpt is not a whole zip archive"):
        resolve_ckpt_path(str(path), trainer_for(tmp_path))
