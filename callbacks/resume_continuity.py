"""ResumeContinuity: records where a run resumed, and checks that its losses, learning rates and discriminator
schedule continue there."""

from __future__ import annotations

from typing import Any, Mapping

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.compat.proto.event_pb2 import Event, SessionLog

from callbacks.base import DiagnosticCallback
from codecgan.cadence import is_logging_step, logged_step
from codecgan.diagnosis import tags
from codecgan.diagnosis.history import MetricHistory
from codecgan.diagnosis.rules.resume import RESUME_AFTER, RESUME_WINDOW, resume_discontinuity

RESUME_TEXT_TAG = "diag/resume"
LR_TAGS_BY_OPTIMIZER = (tags.TRAIN_LR_G, tags.TRAIN_LR_D)
# Logging steps after a resume during which the rule is run: RESUME_AFTER points of every series, with room for
# sparser ones (train/loss_d is logged only when the discriminator stepped on a logging batch).
CHECK_LOGGING_STEPS = 4 * RESUME_AFTER
# Points kept per tag: the rule's trailing window before a resume and the points recorded while it is checked, so the
# live judgement sees the window `codecgan diagnose` sees.
HISTORY_POINTS = RESUME_WINDOW + CHECK_LOGGING_STEPS + 1


class ResumeContinuity(DiagnosticCallback):
    """At every logging step, keeps the single-batch loss terms of the outputs `losses` (`train/<term>`, as the
    module logs them), the learning rates of the first two optimizers (`train/lr_g`, `train/lr_d`), `d_update_ratio`
    when the module reports one, and logs `diag/d_step_rate`: the fraction of batches since the previous logging step
    on which the discriminator stepped (the outputs' `d_stepped`).

    When fit starts from a checkpoint it logs `diag/resumed_at_step` (= the step) and a text entry `diag/resume` at
    the resume step, and marks the step as a TensorBoard restart (a SessionLog START event, as `SummaryWriter`'s
    `purge_step` writes): TensorBoard and `codecgan diagnose` then drop the earlier run's points from that step on,
    which the resumed run replaces. Then, for a few logging steps, it compares each series after the resume with its
    trend before it (the state holds the history up to the checkpoint). Why: a resume that restarts a learning-rate
    schedule, drops the optimizer's state or shifts the discriminator's warm-up changes the training without an
    error (TensorSpeech/TensorFlowTTS#409). Catches RESUME_DISCONTINUITY; each resume is judged on its own, and an
    alarm stays active for the rest of the run (a jump that happened does not settle; `codecgan diagnose` reports the
    first resume that jumped).
    """

    codes = ("RESUME_DISCONTINUITY",)

    def __init__(self) -> None:
        super().__init__()
        self.history = MetricHistory(max_points=HISTORY_POINTS)
        self.d_steps = 0
        self.batches = 0
        self.resume_step: int | None = None
        self.checks_left = 0
        self.resuming = False  # set when fit starts from a checkpoint, until the first batch records the resume

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self.resuming = trainer.ckpt_path is not None or trainer.global_step > 0

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        # Recorded at the first batch, not in on_train_start: Lightning advances its batch counter (the logging axis)
        # for a checkpoint saved at a batch's end only when the epoch loop starts.
        if self.resuming:
            self.resuming = False
            self._record_resume(trainer, logged_step(trainer))

    def _record_resume(self, trainer: Trainer, step: int) -> None:
        self.resume_step, self.checks_left = step, CHECK_LOGGING_STEPS
        self._record(trainer, None, {tags.RESUMED_AT_STEP: float(step)}, log=False)
        if not trainer.is_global_zero:
            return
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                # Before this run's first points, so that it drops only the earlier run's points at this step and later.
                restart = Event(step=step, session_log=SessionLog(status=SessionLog.START))
                logger.experiment._get_file_writer().add_event(restart)  # SummaryWriter has no public add_event
                source = f" from {trainer.ckpt_path}" if trainer.ckpt_path else ""
                logger.experiment.add_text(
                    RESUME_TEXT_TAG, f"Resumed{source} at step {step} (epoch {trainer.current_epoch}).", step
                )
            logger.log_metrics({tags.RESUMED_AT_STEP: float(step)}, step=step)

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        outputs = outputs if isinstance(outputs, Mapping) else {}
        self.batches += 1
        self.d_steps += bool(outputs.get("d_stepped", False))
        if not is_logging_step(trainer):
            return
        values = {tags.D_STEP_RATE: self.d_steps / self.batches}
        self.d_steps = self.batches = 0
        self._record(trainer, pl_module, values)
        values = self._learning_rates(trainer)
        losses = outputs.get("losses") or {}
        names = sorted(name for name, value in losses.items() if isinstance(value, torch.Tensor))
        if names:  # one read of this logging step's values
            read = torch.stack([losses[name].detach().float().reshape(()) for name in names]).tolist()
            values.update({f"train/{name}": value for name, value in zip(names, read)})
        if isinstance(outputs.get("d_update_ratio"), float):
            values[tags.D_UPDATE_RATIO] = outputs["d_update_ratio"]
        self._record(trainer, None, values, log=False)  # the module logs these
        if self.checks_left > 0:
            self.checks_left -= 1
            self._raise(trainer, [resume_discontinuity(self.history, resume_steps=[self.resume_step])])
        self.alarms.log_active(pl_module)

    @staticmethod
    def _learning_rates(trainer: Trainer) -> dict[str, float]:
        optimizers = zip(LR_TAGS_BY_OPTIMIZER, trainer.optimizers)
        return {tag: float(optimizer.param_groups[0]["lr"]) for tag, optimizer in optimizers}

    def _extra_state(self) -> dict[str, Any]:
        return {
            "d_steps": self.d_steps,
            "batches": self.batches,
            "resume_step": self.resume_step,
            "checks_left": self.checks_left,
        }

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self.d_steps, self.batches = int(state["d_steps"]), int(state["batches"])
        self.resume_step, self.checks_left = state["resume_step"], int(state["checks_left"])
