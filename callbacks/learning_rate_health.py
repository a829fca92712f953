"""LearningRateHealth: a learning rate decayed to nothing while validation quality stands still."""

from __future__ import annotations

import math
from typing import Any

from lightning.pytorch import LightningModule, Trainer

from callbacks.base import DiagnosticCallback
from callbacks.history_compaction import compact_between_rounds, largest_and_last
from codecgan.cadence import is_logging_step
from codecgan.diagnosis import tags
from codecgan.diagnosis.quality_metric import quality_metric, quality_values
from codecgan.diagnosis.rules import lr_vanished

LR_TAGS_BY_OPTIMIZER = (tags.TRAIN_LR_G, tags.TRAIN_LR_D)


class LearningRateHealth(DiagnosticCallback):
    """Keeps the generator's and discriminator's learning rates (the first parameter group of the first two
    optimizers) at every logging step, the values the module logs as `train/lr_g` and `train/lr_d`, and the family's
    quality metric at every validation round (every candidate of `codecgan.diagnosis.quality_metric` that
    `trainer.callback_metrics` holds: val/pesq, val/loss_mel, val/si_sdr, val/snr_db), and judges them at each round.

    Logs nothing of its own. Why: an exponential decay that is harmless over the run it was tuned for reaches 1e-100
    over a longer one (coqui-ai/TTS#1003: 7e-111 at step 244k, no progress for 240k steps) and nothing else in the
    logs looks wrong. Catches LR_VANISHED, on the same points `codecgan diagnose` reads. A learning rate is kept only
    when it changed, so a constant one costs one point; between validation rounds older than its newest 512 points
    only its largest and last values are kept (`callbacks/history_compaction.py`), so the peak is never forgotten and
    a decaying one grows the history by the rounds, not the logging steps.
    """

    codes = ("LR_VANISHED",)

    def __init__(self) -> None:
        super().__init__()

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not is_logging_step(trainer):
            return
        changed = {
            tag: lr
            for tag, lr in self._learning_rates(trainer).items()
            if not (points := self.history.series(tag)) or points[-1].value != lr
        }
        self._record(trainer, None, changed, log=False)
        self.alarms.log_active(pl_module)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        self._record(trainer, None, quality_values(trainer.callback_metrics), log=False)
        self._compact()
        self._raise(trainer, {"LR_VANISHED": lr_vanished(self.history)})

    def _compact(self) -> None:
        """Keep the history growing with the rounds, not the logging steps (`callbacks/history_compaction.py`):
        LR_VANISHED reads a learning rate only as its latest value at each round and its peak so far, which each
        interval's largest and last points keep."""
        chosen = quality_metric(self.history)
        if chosen is not None:
            rounds = [p for p in self.history.series(chosen[0]) if math.isfinite(p.value)]
            for tag in LR_TAGS_BY_OPTIMIZER:
                compact_between_rounds(self.history, tag, rounds, largest_and_last)

    @staticmethod
    def _learning_rates(trainer: Trainer) -> dict[str, float]:
        """Host floats (an optimizer keeps its learning rate on the host): no device read."""
        return {
            tag: float(optimizer.param_groups[0]["lr"])
            for tag, optimizer in zip(LR_TAGS_BY_OPTIMIZER, trainer.optimizers)
        }
