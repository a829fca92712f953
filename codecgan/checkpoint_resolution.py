"""Which checkpoint ``--ckpt_path last`` / ``auto`` resumes from.

Lightning's ``last`` looks only at ModelCheckpoint's last file and the on-exception file, ignores
SLURM's ``hpc_ckpt_*.ckpt``, and when it finds nothing it warns and trains from scratch — a resumed
week-long run that silently restarts. codecgan resolves the path itself:

- ``last``: the newest whole file among every ``last*.ckpt``, ``on_exception*.ckpt`` and
  ``hpc_ckpt_*.ckpt`` in the checkpoint folders; an error naming the folders when there is none.
- ``auto``: the same, but starts fresh (with a warning) when there is none — for job scripts that
  are requeued with an unchanged command line.
- no ``--ckpt_path``: a fresh run; an error when the folder already holds an earlier run's
  checkpoints, so two runs never mix in one folder.
- a path: used as given, after the same check that it is whole.

"Whole" is checked on the file's zip structure, not by loading it (``codecgan.saved_file_damage``): a file
cut short at any byte lacks the archive's central directory, which ``torch.save`` writes last. It costs
milliseconds for any size, and every rank does it at start-up. A file skipped for this is named in a warning
together with the one used instead.
"""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_warn

from codecgan.config_error import ConfigError
from codecgan.saved_file_damage import saved_file_damage as checkpoint_damage

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


def resume_candidates(folders: list[Path]) -> list[Path]:
    """Every file that ``last``/``auto`` may resume from, newest first."""
    candidates = {path for folder in folders for pattern in RESUME_PATTERNS for path in folder.glob(pattern)}
    return sorted(candidates, key=modification_time, reverse=True)


def modification_time(path: Path) -> float:
    # A link (ModelCheckpoint(save_last="link")) counts with its target's time; a dangling one with its own.
    return (path.stat() if path.exists() else path.lstat()).st_mtime


def newest_checkpoint(folders: list[Path]) -> Path | None:
    candidates = resume_candidates(folders)
    return candidates[0] if candidates else None


def newest_whole_checkpoint(folders: list[Path]) -> tuple[Path | None, list[str]]:
    """The newest resume candidate that is whole, and a description of each newer one that is not."""
    damaged = []
    for path in resume_candidates(folders):
        reason = checkpoint_damage(path)
        if reason is None:
            return path, damaged
        damaged.append(f"{path} is {reason}")
    return None, damaged


def resolve_ckpt_path(ckpt_path: str | None, trainer: Trainer) -> str | None:
    """Turn ``last``/``auto`` into the path of a whole checkpoint; refuse to start over an earlier run's
    checkpoints or from a damaged file."""
    if ckpt_path not in (None, "last", "auto"):
        reason = checkpoint_damage(Path(ckpt_path)) if Path(ckpt_path).is_file() else None
        if reason is not None:
            raise ConfigError(
                f"ckpt_path: {ckpt_path} is {reason}. Pass another checkpoint, or --ckpt_path last to resume from "
                "the newest whole one in the run's checkpoint folder."
            )
        return ckpt_path
    folders = checkpoint_folders(trainer)
    if ckpt_path is None:
        newest = newest_checkpoint(folders)
        if newest is not None:
            raise FileExistsError(
                f"{newest.parent} already holds checkpoints of an earlier run (newest: {newest.name}). Resume "
                "it with --ckpt_path last, or start a new run under another --trainer.logger.init_args.name "
                "(or delete the folder)."
            )
        return None
    chosen, damaged = newest_whole_checkpoint(folders)
    skipped = "; ".join(damaged)
    if chosen is not None:
        if damaged:
            rank_zero_warn(f"--ckpt_path {ckpt_path}: {skipped}; resuming from {chosen}, the newest whole checkpoint.")
        return str(chosen)
    searched = ", ".join(str(folder) for folder in folders)
    if ckpt_path == "last":
        if damaged:
            raise FileNotFoundError(
                f"--ckpt_path last: no whole checkpoint to resume from: {skipped}. Move those files out of the "
                "folder and start without --ckpt_path, or pass --ckpt_path auto to start a fresh run over them."
            )
        raise FileNotFoundError(
            f"--ckpt_path last: no checkpoint to resume from in {searched}. Start without --ckpt_path, "
            "or use --ckpt_path auto to resume when a checkpoint exists and start fresh otherwise."
        )
    if damaged:
        rank_zero_warn(f"--ckpt_path auto: no whole checkpoint to resume from: {skipped}; starting a fresh run.")
    else:
        rank_zero_warn(f"--ckpt_path auto: no checkpoint in {searched}; starting a fresh run.")
    return None
