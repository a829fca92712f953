"""Counts the training steps skipped for non-finite gradients, stops a run that keeps producing them, and makes each
learning-rate scheduler wait for the steps its optimizer skipped.

A step whose gradient norm is not finite leaves its network's weights and optimizer state untouched
(``codecgan.optimizer_steps`` skips it on the device). ``NonFiniteGuard`` keeps the count of such batches on the
device too, so a batch that does not log never waits for it, and reads it at logging steps:
``max_in_a_row`` such batches in a row stop the run with ``NonFiniteTrainingError``. The skipped steps changed
nothing, so the weights are the last finite ones.

A learning-rate scheduler steps once per step its optimizer took: the skipped steps read at a logging step make
the scheduler wait that many batches (``scheduler_waits``, host ints, checkpointed under ``scheduler_waits``).

The counters are buffers of the module the guard watches, at its top level (``nonfinite_steps``,
``nonfinite_in_a_row``: the ``state_dict`` keys every codecgan checkpoint holds), so they move with the module to
its device and a resumed run keeps counting. The guard looks them up on the module at each use.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

CHECKPOINT_KEY = "scheduler_waits"


class NonFiniteTrainingError(RuntimeError):
    """Training produced non-finite gradients for too many batches in a row."""


class NonFiniteGuard:
    """The non-finite step counters of ``module`` (registered on it as buffers) and its schedulers' waits.

    Args:
        module: the module whose ``state_dict`` holds the counters.
        max_in_a_row: batches in a row with a skipped (non-finite) step before training stops.
    """

    def __init__(self, module: nn.Module, max_in_a_row: int) -> None:
        if max_in_a_row < 1:
            raise ValueError(f"max_nonfinite_in_a_row must be >= 1, got {max_in_a_row}.")
        self.module = module
        self.max_in_a_row = max_in_a_row
        module.register_buffer("nonfinite_steps", torch.zeros((), dtype=torch.long))
        module.register_buffer("nonfinite_in_a_row", torch.zeros((), dtype=torch.long))
        # Skipped steps of [generator, discriminator] not yet read back; read at logging steps.
        module.register_buffer("unread_skipped_steps", torch.zeros(2, dtype=torch.long), persistent=False)
        # Batches each scheduler still waits because its optimizer skipped steps: [generator, discriminator].
        self.scheduler_waits = [0, 0]

    def count(self, skipped: Tensor, not_stepped: Tensor) -> None:
        """Update the counters on the device: ``skipped`` (``[2]`` bool: generator, discriminator) marks non-finite
        steps, ``not_stepped`` every step an optimizer did not take (for its scheduler)."""
        module = self.module
        batch_skipped = skipped.any().long()
        module.nonfinite_steps.add_(batch_skipped)
        module.nonfinite_in_a_row.mul_(batch_skipped).add_(batch_skipped)  # 0 after a finite batch
        module.unread_skipped_steps.add_(not_stepped.long())

    def read(self, step: int) -> None:
        """Read the counters (a host sync: at logging steps only): add the skipped steps to the schedulers' waits, and
        raise ``NonFiniteTrainingError`` after ``max_in_a_row`` non-finite batches in a row (``step``: the
        trainer's, for the message)."""
        module = self.module
        in_a_row, skipped_g, skipped_d = torch.cat(
            [module.nonfinite_in_a_row[None], module.unread_skipped_steps]
        ).tolist()
        module.unread_skipped_steps.zero_()
        self.scheduler_waits = [self.scheduler_waits[0] + skipped_g, self.scheduler_waits[1] + skipped_d]
        if in_a_row >= self.max_in_a_row:
            raise NonFiniteTrainingError(
                f"Stopping: {in_a_row} batches in a row had non-finite gradients "
                f"(step {step}, {int(module.nonfinite_steps)} in total); their optimizer steps were "
                "skipped, so the weights are the last finite ones. Look at the first non-finite loss term in "
                "TensorBoard (train/*) and at diag/nonfinite_steps; lower the learning rate or clip harder."
            )

    def step_scheduler(self, scheduler: Any, index: int) -> None:
        """Step ``scheduler`` (``index`` 0: the generator's, 1: the discriminator's) unless it still waits for steps
        its optimizer skipped."""
        if self.scheduler_waits[index] > 0:
            self.scheduler_waits[index] -= 1
        else:
            scheduler.step()

    def save(self, checkpoint: dict[str, Any]) -> None:
        """Store the schedulers' waits, the skipped steps not yet read included, in ``checkpoint``."""
        skipped_g, skipped_d = self.module.unread_skipped_steps.tolist()  # a checkpoint is a host sync anyway
        checkpoint[CHECKPOINT_KEY] = [self.scheduler_waits[0] + skipped_g, self.scheduler_waits[1] + skipped_d]

    def load(self, checkpoint: dict[str, Any]) -> None:
        """Restore the schedulers' waits from ``checkpoint`` (none in a checkpoint that holds no waits)."""
        self.scheduler_waits = list(checkpoint.get(CHECKPOINT_KEY, [0, 0]))
