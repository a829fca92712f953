"""LearningRateHealth: a learning rate decayed to nothing while validation quality stands still."""

from __future__ import annotations

from typing import Any

from lightning.pytorch import LightningModule, Trainer

from callbacks.base import DiagnosticCallback
from codecgan.cadence import is_logging_step
from codecgan.diagnosis import tags
from codecgan.diagnosis.history import MetricHistory
from codecgan.diagnosis.quality_metric import quality_values
from codecgan.diagnosis.rules import lr_vanished

LR_TAGS_BY_OPTIMIZER = (tags.TRAIN_LR_G, tags.TRAIN_LR_D)


class LearningRateHealth(DiagnosticCallback):
    """Keeps the generator's and discriminator's learning rates (the first parameter group of the first two
    optimizers) at every logging step, the values the module logs as `train/lr_g` and `train/lr_d`, and the family's
    quality metric at every validation round (every candidate of `codecgan.diagnosis.quality_metric` that
    `trainer.callback_metrics` holds: val/pesq, val/loss_mel, val/si_sdr, val/snr_db), and judges them at each round.

    Logs nothing of its own. Why: an exponential decay that is harmless over the run it was tuned for reaches 1e-100
    over a longer one (coqui-ai/TTS#1003: 7e-111 at step 244k, no progress for 240k steps) and nothing else in the
    logs looks wrong. Catches LR_VANISHED, on the same points `codecgan diagnose` reads. The history is uncapped, so
    the peak learning rate is never forgotten; a learning rate is kept only when it changed, so a constant one costs
    one point.
    """

    codes = ("LR_VANISHED",)

    def __init__(self) -> None:
        super().__init__()
        self.history = MetricHistory()  # uncapped: the peak learning rate must stay in it

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
        self._raise(trainer, {"LR_VANISHED": lr_vanished(self.history)})

    @staticmethod
    def _learning_rates(trainer: Trainer) -> dict[str, float]:
        """Host floats (an optimizer keeps its learning rate on the host): no device read."""
        return {
            tag: float(optimizer.param_groups[0]["lr"])
            for tag, optimizer in zip(LR_TAGS_BY_OPTIMIZER, trainer.optimizers)
        }
