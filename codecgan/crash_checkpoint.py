"""Save a checkpoint when training dies: an exception, Ctrl-C, or a preemption signal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L


class CrashCheckpoint(L.Callback):
    """On any exception inside ``fit``, save ``on_exception.ckpt`` next to ModelCheckpoint's files.

    This covers Ctrl-C, errors such as ``NonFiniteTrainingError`` and preemption: after a SIGTERM
    Lightning finishes the current batch and raises ``SIGTERMException``. The file lands in the run's
    checkpoint folder, where ``--ckpt_path last`` / ``auto`` find it when it is the newest checkpoint;
    a later run that ends cleanly deletes it, since its last.ckpt is newer.

    Not Lightning's ``OnExceptionCheckpoint``: its presence makes every ``fit`` without a ckpt_path
    silently resume from the newest checkpoint, which codecgan refuses to do.

    Args:
        dirpath: folder for the file; default: ModelCheckpoint's folder (``runs/<name>/checkpoints``),
            or ``<default_root_dir>/checkpoints`` without one.
        filename: file name without ``.ckpt``.
    """

    def __init__(self, dirpath: str | None = None, filename: str = "on_exception") -> None:
        self.dirpath = dirpath
        self.filename = filename

    def path(self, trainer: L.Trainer) -> Path:
        # Resolved late: Lightning sets ModelCheckpoint up after the other callbacks.
        folder = self.dirpath or getattr(trainer.checkpoint_callback, "dirpath", None)
        return Path(folder or Path(trainer.default_root_dir) / "checkpoints") / f"{self.filename}.ckpt"

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        # Before the first step (bad data, a config error in setup) there is nothing worth resuming,
        # and a checkpoint would make the corrected re-run refuse to start over it.
        if trainer.global_step > 0:
            trainer.save_checkpoint(self.path(trainer))

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit" and trainer.is_global_zero:
            self.path(trainer).unlink(missing_ok=True)

    def state_dict(self) -> dict[str, Any]:
        return {}
