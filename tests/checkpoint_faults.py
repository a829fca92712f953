"""Checkpoint writers that fail the way a cluster makes them fail, for ``trainer.plugins`` in a test's overlay.

Both count the checkpoint writes of the process from 1 and write through ``AtomicCheckpointIO``, so what the
tests check is what ``codecgan fit`` does.
"""

from __future__ import annotations

import errno
import io
import os
import signal
from pathlib import Path
from typing import Any, BinaryIO

import torch

from codecgan.atomic_checkpoint_io import TEMPORARY_SUFFIX, AtomicCheckpointIO


def temporary_files(folder: Path) -> list[str]:
    """The temporary files of checkpoint writes in ``folder``: a failed write must leave none."""
    return sorted(path.name for path in folder.iterdir() if path.name.endswith(TEMPORARY_SUFFIX))


class FileThatFillsUp(io.RawIOBase):
    """A file whose writes fail with ``error_number`` once ``capacity`` bytes have been written."""

    def __init__(self, file: BinaryIO, capacity: int, error_number: int) -> None:
        self.file = file
        self.capacity = capacity
        self.error_number = error_number
        self.written = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        room = self.capacity - self.written
        if len(data) > room:
            self.file.write(bytes(data)[:room])
            self.written = self.capacity
            raise OSError(self.error_number, os.strerror(self.error_number))
        self.written += len(data)
        return self.file.write(data)


class FullDiskCheckpointIO(AtomicCheckpointIO):
    """From write number ``fail_from_write`` on, each write stops with ``errno.<error_name>`` after ``capacity``
    bytes, as on a disk that has filled up (``ENOSPC``) or failed (``EIO``)."""

    def __init__(self, fail_from_write: int, error_name: str = "ENOSPC", capacity: int = 4096) -> None:
        super().__init__()
        self.fail_from_write = fail_from_write
        self.error_number = getattr(errno, error_name)
        self.capacity = capacity
        self.writes = 0

    def write_file(self, checkpoint: dict[str, Any], file: BinaryIO) -> None:
        self.writes += 1
        if self.writes < self.fail_from_write:
            super().write_file(checkpoint, file)
        else:
            torch.save(checkpoint, FileThatFillsUp(file, self.capacity, self.error_number))


class SignalMidWriteCheckpointIO(AtomicCheckpointIO):
    """Write number ``at_write`` writes half its bytes, sends ``signal_name`` to its own process, then writes the
    rest (if the process is still alive): a preemption or a kill that lands in the middle of a save."""

    def __init__(self, at_write: int, signal_name: str = "SIGTERM") -> None:
        super().__init__()
        self.at_write = at_write
        self.signal_number = getattr(signal, signal_name)
        self.writes = 0

    def write_file(self, checkpoint: dict[str, Any], file: BinaryIO) -> None:
        self.writes += 1
        if self.writes != self.at_write:
            super().write_file(checkpoint, file)
            return
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        data = buffer.getvalue()
        file.write(data[: len(data) // 2])
        file.flush()
        os.kill(os.getpid(), self.signal_number)
        file.write(data[len(data) // 2 :])
