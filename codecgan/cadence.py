"""When Lightning writes step metrics, and on which step axis: the batches on which codecgan reads device values.

The same answer inside a batch, from `on_train_batch_start` to `on_train_batch_end`: Lightning advances its batch
counter after the batch ends.
"""

from __future__ import annotations

from lightning.pytorch import Trainer


def logged_step(trainer: Trainer) -> int:
    """The step the loggers put this batch's values at: Lightning's batch counter (one per batch, not per optimizer)."""
    epoch_loop = getattr(getattr(trainer, "fit_loop", None), "epoch_loop", None)
    return int(getattr(epoch_loop, "_batches_that_stepped", trainer.global_step))


def is_logging_step(trainer: Trainer) -> bool:
    """Whether Lightning writes this batch's `on_step` values: every `log_every_n_steps` batches.

    This mirrors Lightning's own rule but leaves out its `should_stop` shortcut, so every rank agrees and the
    collectives at logging steps stay in step. Everything codecgan reads back from the device during training
    (counters, running sums, progress-bar values) is read on these batches only.
    """
    every = trainer.log_every_n_steps
    return bool(every) and (logged_step(trainer) + 1) % every == 0
