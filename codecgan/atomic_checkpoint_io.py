"""Checkpoint writes that leave every file whole: a full disk or a kill during a save loses nothing.

Lightning's ``TorchCheckpointIO`` serializes the whole checkpoint into memory, writes it to a temporary file
from ``tempfile.mkstemp()`` (in the system's temporary folder, not the checkpoint's) and moves it onto the final
name, without fsync. When the two folders are on different file systems, as on most clusters (a local ``/tmp``,
a shared checkpoint volume), the move is a copy that opens the final name for writing first: a full disk, an I/O
error or a kill during that copy truncates the previous ``last.ckpt``. It also holds a second copy of the
checkpoint in host memory.

``replace_atomically`` writes through ``codecgan.atomic_file.written_atomically``: to a temporary name in the
checkpoint's own folder, fsynced, renamed onto the final name with ``os.replace``, the folder fsynced. A reader
then sees the old file or the new one, never part of one, even after a power loss; a write that fails removes
its temporary file and raises ``CheckpointWriteError``, whose message names the file, the OS error, the free
space and what to do. A process killed during a write (``SIGKILL``, the OOM killer) leaves its temporary file,
``<name>.<random>.tmp``, which ``remove_interrupted_writes`` deletes when the next fit starts. The price:
replacing a checkpoint needs room for the new one beside the old one until the rename.

``AtomicCheckpointIO`` is the ``CheckpointIO`` that writes this way; ``codecgan fit`` installs it unless the
config names a checkpoint plugin of its own. ``CrashCheckpoint`` writes through ``save_atomically``, so its
concurrent per-rank saves under DDP leave one whole file too.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any, BinaryIO, Callable

import torch
from lightning.fabric.plugins import CheckpointIO, TorchCheckpointIO
from lightning.pytorch.strategies import Strategy

# Temporary names, ``<final name>.<random>.tmp``, never match the ``*.ckpt`` patterns that resuming and
# ModelCheckpoint read.
from codecgan.atomic_file import TEMPORARY_SUFFIX, written_atomically

log = logging.getLogger(__name__)


class CheckpointWriteError(Exception):
    """A checkpoint could not be written; the file it would have replaced is unchanged."""

    def __init__(self, path: Path, error: BaseException) -> None:
        self.path = path
        self.error = error
        super().__init__(
            f"could not write the checkpoint {path}: {error}{free_space_note(path.parent)}. The checkpoints "
            f"already in {path.parent} are unchanged and whole. Free space there, or move that folder to a disk "
            "with room and point ModelCheckpoint's dirpath at it; then resume with --ckpt_path last."
        )


def free_space_note(folder: Path) -> str:
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return ""
    return f" ({free / 1e6:.1f} MB free on that file system)"


def os_error_in(error: BaseException) -> OSError | None:
    """The ``OSError`` behind ``error``: torch.save reports a failed ``write`` as a ``RuntimeError`` whose
    context is the ``OSError``."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, OSError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def replace_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Make ``path`` hold what ``write`` writes into the temporary file it is given, or leave it as it was
    (``codecgan.atomic_file.written_atomically``).

    Raises:
        CheckpointWriteError: the write, the fsync or the rename failed with an ``OSError`` (a full disk, an
            I/O error, a lost network mount); the temporary file is removed.
    """
    try:
        with written_atomically(path) as temporary:
            write(temporary)
    except Exception as error:
        cause = os_error_in(error)
        if cause is None:
            raise
        raise CheckpointWriteError(path, cause) from error


def save_atomically(checkpoint_io: CheckpointIO, checkpoint: dict[str, Any], path: Path) -> None:
    """Save ``checkpoint`` to ``path`` through ``checkpoint_io`` so that ``path`` ends whole or unchanged: directly
    through an ``AtomicCheckpointIO``, and through a temporary name in ``path``'s folder for any other."""
    if isinstance(checkpoint_io, AtomicCheckpointIO):
        checkpoint_io.save_checkpoint(checkpoint, path)
    else:
        replace_atomically(path, lambda temporary: checkpoint_io.save_checkpoint(checkpoint, temporary))


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose local writes go through ``replace_atomically`` (see the module docstring),
    streamed to the file without a second copy in memory. URLs (``s3://``, ``gs://`` ...) are written by
    Lightning, whose object-store uploads replace the object in one step."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None or "://" in str(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return

        def write(temporary: Path) -> None:
            with open(temporary, "wb") as file:
                self.write_file(checkpoint, file)

        replace_atomically(Path(path), write)

    def write_file(self, checkpoint: dict[str, Any], file: BinaryIO) -> None:
        """Serialize ``checkpoint`` into the open temporary file (a Python file object, so that a failed write
        keeps its ``errno``; ``torch.save`` to a path reports a bare "iostream error")."""
        torch.save(checkpoint, file)


def use_atomic_writes(strategy: Strategy) -> None:
    """Give ``strategy`` an ``AtomicCheckpointIO`` in place of Lightning's default ``TorchCheckpointIO``; a
    checkpoint plugin the config chose (``trainer.plugins``, the strategy's ``checkpoint_io``) is kept."""
    if type(strategy.checkpoint_io) is TorchCheckpointIO:
        strategy.checkpoint_io = AtomicCheckpointIO()


def remove_interrupted_writes(folder: Path) -> list[Path]:
    """Delete the temporary files that writes killed midway left in ``folder``; returns them. Call it only while
    nothing writes there (before a fit starts)."""
    leftovers = sorted(folder.glob(f"*.ckpt.*{TEMPORARY_SUFFIX}"))
    for leftover in leftovers:
        leftover.unlink(missing_ok=True)
        log.info(f"Removed {leftover}, left by a checkpoint write that was killed midway.")
    return leftovers
