"""Files that appear whole under their final name or not at all: checkpoints, and every output of ``codecgan
enhance|encode|decode|predict|test``.

``written_atomically(path)`` gives a temporary name in ``path``'s own folder (``<name>.<random>.tmp``) to write
to; when the block ends without an exception it fsyncs the file, renames it onto ``path`` with ``os.replace``
and fsyncs the folder, so a reader sees the old file or the new one, never part of one, even after a power loss.
An exception (a full disk, an I/O error, a bug, ``KeyboardInterrupt``) removes the temporary file and is raised
unchanged; ``path`` is as it was. A process killed during the write (``SIGKILL``, the OOM killer) leaves only its
temporary file, whose ``.tmp`` suffix no reader of checkpoints, audio or codes takes for a finished file.

The temporary name keeps the final suffix inside it (``a.wav.3f2c....tmp``), so a writer that infers the format
from the file name must be told the format (``soundfile.write(..., format="WAV")``). This module imports neither
Lightning nor torch: the inference commands use it.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TEMPORARY_SUFFIX = ".tmp"


def temporary_name(path: Path) -> Path:
    """A fresh ``<name>.<random>.tmp`` beside ``path``: random, so that processes writing the same file at once
    (ranks of a DDP job) each write their own; not ``tempfile.mkstemp``, whose files are private to the user
    (mode 0600) where an output takes the umask's mode."""
    return path.with_name(f"{path.name}.{secrets.token_hex(8)}{TEMPORARY_SUFFIX}")


@contextmanager
def written_atomically(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s new content to; on leaving the block without an exception it
    becomes ``path`` (see the module docstring). Creates ``path``'s folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_name(path)
    try:
        yield temporary
        fsync(temporary)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)


def fsync(path: Path) -> None:
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable. Some file systems (and Windows) refuse to fsync a folder; the
    rename is atomic there all the same, only not yet on disk after a power loss."""
    try:
        fsync(folder)
    except OSError:
        pass
