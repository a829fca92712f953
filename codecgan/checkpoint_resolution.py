"""Which checkpoint ``--ckpt_path last`` / ``auto`` resumes from.

Lightning's ``last`` looks only at ModelCheckpoint's last file and the on-exception file, ignores
SLURM's ``hpc_ckpt_*.ckpt``, and when it finds nothing it warns and trains from scratch — a resumed
week-long run that silently restarts. codecgan resolves the path itself:

- ``last``: the newest of every ``last*.ckpt``, ``on_exception*.ckpt`` and ``hpc_ckpt_*.ckpt`` in the
  checkpoint folders; an error naming the folders when there is none.
- ``auto``: the same, but starts fresh (with a warning) when there is none — for job scripts that
  are requeued with an unchanged command line.
- no ``--ckpt_path``: a fresh run; an error when the folder already holds an earlier run's
  checkpoints, so two runs never mix in one folder.
"""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_warn

RESUME_PATTERNS = ("last*.ckpt", "on_exception*.ckpt", "hpc_ckpt_*.ckpt")


def checkpoint_folders(trainer: Trainer) -> list[Path]:
    """Where ModelCheckpoint, OnExceptionCheckpoint and SLURM write (before ``fit`` resolves them)."""
    folders = {Path(trainer.default_root_dir)}
    for callback in trainer.callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.dirpath is None:
            # ModelCheckpoint's own default, resolved only inside fit().
            base = trainer.log_dir if trainer.loggers else trainer.default_root_dir
            folders.add(Path(base) / "checkpoints")
        elif getattr(callback, "dirpath", None):
            folders.add(Path(callback.dirpath))
    return sorted(folders)


def newest_checkpoint(folders: list[Path]) -> Path | None:
    candidates = [path for folder in folders for pattern in RESUME_PATTERNS for path in folder.glob(pattern)]
    return max(candidates, key=lambda path: path.stat().st_mtime) if candidates else None


def resolve_ckpt_path(ckpt_path: str | None, trainer: Trainer) -> str | None:
    """Turn ``last``/``auto`` into a file path; refuse to start over an earlier run's checkpoints."""
    if ckpt_path not in (None, "last", "auto"):
        return ckpt_path
    folders = checkpoint_folders(trainer)
    newest = newest_checkpoint(folders)
    if ckpt_path is None:
        if newest is not None:
            raise FileExistsError(
                f"{newest.parent} already holds checkpoints of an earlier run (newest: {newest.name}). Resume "
                "it with --ckpt_path last, or start a new run under another --trainer.logger.init_args.name "
                "(or delete the folder)."
            )
        return None
    if newest is not None:
        return str(newest)
    searched = ", ".join(str(folder) for folder in folders)
    if ckpt_path == "last":
        raise FileNotFoundError(
            f"--ckpt_path last: no checkpoint to resume from in {searched}. Start without --ckpt_path, "
            "or use --ckpt_path auto to resume when a checkpoint exists and start fresh otherwise."
        )
    rank_zero_warn(f"--ckpt_path auto: no checkpoint in {searched}; starting a fresh run.")
    return None
