"""Save a checkpoint when training dies: an exception, Ctrl-C, or a preemption signal."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.strategies import DDPStrategy, DeepSpeedStrategy

from codecgan.atomic_checkpoint_io import CheckpointWriteError, save_atomically

log = logging.getLogger(__name__)


class CrashCheckpoint(L.Callback):
    """On any exception inside ``fit``, save ``on_exception.ckpt`` next to ModelCheckpoint's files.

    This covers Ctrl-C, errors such as ``NonFiniteTrainingError`` and preemption: after a SIGTERM
    Lightning finishes the current batch and raises ``SIGTERMException``. The file lands in the run's
    checkpoint folder, where ``--ckpt_path last`` / ``auto`` find it when it is the newest checkpoint;
    a later run that ends cleanly deletes it, since its last.ckpt is newer.

    Not Lightning's ``OnExceptionCheckpoint``: its presence makes every ``fit`` without a ckpt_path
    silently resume from the newest checkpoint, which codecgan refuses to do.

    **Several processes (DDP).** An exception may be raised on one rank only (an OOM, an I/O error) while
    the others wait in a collective (a gradient all-reduce, a buffer broadcast). ``Trainer.save_checkpoint``
    ends with a barrier, and the enhancer's checkpoint hook all-gathers, so it would wait for peers that
    never arrive. So under DDP each rank that raised writes the checkpoint from its own state, with no
    collective. Any rank's copy resumes the run: DDP ranks hold identical weights and optimizer states, and
    a collective that fails leaves them as they were (DDP all-reduces gradients only and copies a broadcast
    into the buffers only once it has completed). What differs per rank is left out or taken from the writing
    rank: the enhancer's PESQ-lag buffer is not saved (the first discriminator step after resuming gets no
    metric target and counts as a dropped batch), and callback state is the writing rank's. Each rank writes
    through ``save_atomically`` (a temporary file of its own, renamed over ``on_exception.ckpt``), so ranks
    that save together (a peer's failure, SIGTERM, ``NonFiniteTrainingError``) leave one whole file, and a
    rank killed while writing leaves only its temporary file (deleted when the next ``codecgan fit`` starts).

    A crash checkpoint that cannot be written (the disk that just refused ``last.ckpt`` is still full) is
    logged and skipped, so that the run ends with the error that stopped it.

    How the job ends when Lightning launched the ranks (``codecgan fit`` with ``devices: N``):

    - a rank > 0 fails: it saves and exits. Under gloo rank 0's collective then fails ("Connection closed
      by peer"), and rank 0 saves too and exits; about 2 s on CPU. Otherwise (NCCL) Lightning's process
      observer in rank 0 sees the failed rank within 5 s and kills rank 0 and the other ranks (``SIGKILL``,
      status 137).
    - rank 0 fails: once its checkpoint is written, ``GANDDPStrategy`` kills the ranks it launched, as
      Lightning does on Ctrl-C; they wait for rank 0 in a collective, under NCCL until the process group's timeout (30 min by
      default), and a ``SIGTERM`` does not interrupt that. Rank 0 then exits with its own status, or with
      137 if the observer, seeing a killed rank, ends it first.

    Either way the status is non-zero (for a SIGTERM, 143 unless the observer's 137 comes first). Ranks
    started by another launcher are that launcher's to end: torchrun stops all workers when one fails;
    ``srun`` needs ``--kill-on-bad-exit=1``, or the surviving ranks end only at the NCCL timeout.
    Tested with gloo on CPU only. Under NCCL the saving rank copies its tensors to the host, which waits
    for the work already queued on its GPU; should that include a collective its peers never join, the
    rank blocks until NCCL's watchdog ends it at the timeout, without a checkpoint.

    Strategies that shard the state across ranks (FSDP, DeepSpeed, ``ZeroRedundancyOptimizer``) need
    collectives to assemble any checkpoint; under them this callback writes none when several processes
    run, and says so in the log.

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
            try:
                if trainer.world_size == 1:
                    trainer.save_checkpoint(self.path(trainer))
                else:
                    self._save_without_collectives(trainer)
            except (CheckpointWriteError, OSError) as error:
                cause = error.error if isinstance(error, CheckpointWriteError) else error
                log.error(f"Rank {trainer.global_rank} wrote no crash checkpoint {self.path(trainer)}: {cause}")

    def _save_without_collectives(self, trainer: L.Trainer) -> None:
        strategy = trainer.strategy
        sharded = not isinstance(strategy, DDPStrategy) or isinstance(strategy, DeepSpeedStrategy)
        if sharded or any(hasattr(optimizer, "consolidate_state_dict") for optimizer in trainer.optimizers):
            log.warning(
                f"Rank {trainer.global_rank} wrote no crash checkpoint: {type(strategy).__name__} or its "
                "optimizers shard the training state across ranks, and gathering it needs the other ranks, "
                "which may be waiting in a collective."
            )
            return
        path = self.path(trainer)
        # Trainer.save_checkpoint is dump_checkpoint + Strategy.save_checkpoint (rank 0 only) + a barrier.
        # dump_checkpoint is private, but it is the one place that builds the checkpoint dict with every hook
        # (state_dict, on_save_checkpoint, loops, precision). Under DDP it runs no collective of its own, and the
        # one hook that gathers (the enhancer's) skips that while the trainer is interrupted.
        checkpoint = trainer._checkpoint_connector.dump_checkpoint(weights_only=False)
        save_atomically(strategy.checkpoint_io, checkpoint, path)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit" and trainer.is_global_zero:
            self.path(trainer).unlink(missing_ok=True)

    def state_dict(self) -> dict[str, Any]:
        return {}
