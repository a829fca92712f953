"""DivergenceMonitor: the training loss keeps falling while the validation metric falls from its best."""

from __future__ import annotations

import math
import os
from typing import Any, Mapping

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_warn

from callbacks.base import DiagnosticCallback, require
from callbacks.distributed import any_rank, broadcast_object, save_checkpoint
from callbacks.history_compaction import compact_between_rounds, drop_zeros_before, median_at_round
from callbacks.running_sums import RunningSums
from callbacks.sync_moments import at_logging_steps
from codecgan.cadence import is_logging_step, logged_step
from codecgan.diagnosis import tags
from codecgan.diagnosis.quality_metric import QUALITY_METRICS, direction, logged_quality_metric
from codecgan.diagnosis.rules import loss_metric_divergence, nonfinite_loss
from codecgan.diagnosis.rules.quality import DIVERGENCE_PATIENCE

ACTIONS = ("warn", "stop", "warn_and_checkpoint_best")
MODES = ("max", "min")


class DivergenceMonitor(DiagnosticCallback):
    """Tracks a training loss (the single-batch values the module logs at logging steps, from the outputs `losses`;
    each round reads their median since the previous round) and a validation quality metric (from
    `trainer.callback_metrics`), and alarms when the metric has fallen from its best by more than `min_drop` for
    `patience` rounds, with a robust (Theil–Sen) downward trend, while the loss kept falling. Also counts non-finite
    losses per batch (read back only at logging steps), logs `diag/nonfinite_loss_steps`, and keeps the logged loss
    terms that are not finite. These are the values `codecgan diagnose` reads from the logs, so both give one answer;
    under DDP every rank keeps rank 0's (the logged) values.

    `metric`: by default (None) the family's quality metric (`codecgan.diagnosis.quality_metric`), chosen as
    `codecgan diagnose` chooses it: the first of `val/pesq` (an enhancer), `val/loss_mel` (a codec), `val/si_sdr`,
    `val/snr_db` that the first validation logs.
    `mode`: whether a higher (`max`) or lower (`min`) metric is better; by default the metric's known direction
    (`min` for `val/loss_mel`, the codec's metric; `max` for PESQ, SI-SDR and SNR).

    Why: a GAN's losses are a poor proxy for quality; the metric can peak early and decline for many epochs while
    every loss curve looks healthy. Catches LOSS_METRIC_DIVERGENCE and NONFINITE_LOSS. `action`: "warn" (default),
    "stop" (decided with `reduce_boolean_decision` on every rank, so all ranks stop together), or
    "warn_and_checkpoint_best" (saves `<dirpath>/best_<metric>.ckpt` at each new best, and names it in the alarm).
    Non-finite counts are summed over ranks.
    """

    codes = ("LOSS_METRIC_DIVERGENCE", "NONFINITE_LOSS")
    sync_moments = {"on_train_batch_end": at_logging_steps}  # and on_validation_end, as every callback

    def __init__(
        self,
        metric: str | None = None,
        loss: str = tags.TRAIN_LOSS_G,
        mode: str | None = None,
        min_drop: float | None = None,
        patience: int = DIVERGENCE_PATIENCE,
        action: str = "warn",
        dirpath: str | None = None,
    ) -> None:
        super().__init__()
        require(
            mode is None or mode in MODES,
            f"DivergenceMonitor mode must be one of {', '.join(MODES)} or null, got {mode!r}.",
        )
        if metric is not None:
            mode = mode or direction(metric)
        require(action in ACTIONS, f"DivergenceMonitor action must be one of {', '.join(ACTIONS)}, got {action!r}.")
        require(
            isinstance(patience, int) and patience >= 1,
            f"DivergenceMonitor patience must be a positive integer, got {patience!r}.",
        )
        require(
            min_drop is None or min_drop > 0, f"DivergenceMonitor min_drop must be None or positive, got {min_drop!r}."
        )
        require(
            loss.startswith("train/"),
            f"DivergenceMonitor loss must be a train/ tag such as 'train/loss_g', got {loss!r}.",
        )
        self.configured_metric, self.configured_mode = metric, mode  # the state key: the same before and after a resume
        self.metric, self.loss, self.mode, self.min_drop = metric, loss, mode, min_drop
        self.patience, self.action, self.dirpath = patience, action, dirpath
        self._nonfinite = RunningSums(("steps",))
        self.best: float | None = None
        self.best_path: str | None = None
        self.stopped_reason: str | None = None
        self._missing_warned = False

    @property
    def state_key(self) -> str:
        return self._generate_state_key(metric=self.configured_metric, loss=self.loss, mode=self.configured_mode)

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        losses: dict[str, torch.Tensor] = {}
        if isinstance(outputs, Mapping):
            with torch.no_grad():  # no graph, without a detach op per loss
                losses = {
                    f"train/{name}": first_element(value)
                    for name, value in (outputs.get("losses") or {}).items()
                    if isinstance(value, torch.Tensor)
                }
                if isinstance(outputs.get("loss"), torch.Tensor):
                    losses.setdefault(tags.TRAIN_LOSS, first_element(outputs["loss"]))
                if losses:
                    self._nonfinite.add("steps", ~torch.stack(list(losses.values())).isfinite().all())
        if is_logging_step(trainer):
            steps = self._nonfinite.flush(trainer)["steps"]
            self._record(trainer, pl_module, {tags.NONFINITE_LOSS_STEPS: steps})
            self._record(trainer, None, self._logged_losses(trainer, losses), log=False)
            finding = nonfinite_loss(self.history)
            self._raise(trainer, {"NONFINITE_LOSS": finding})
            if self.action == "stop":
                self._stop(trainer, finding is not None, "a training loss became non-finite")
            self.alarms.log_active(pl_module)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        value = self._metric_value(trainer)
        if value is None:
            return
        self.history.add(self.metric, value, logged_step(trainer), trainer.current_epoch)
        self._compact()
        improved = self.best is None or (value > self.best if self.mode == "max" else value < self.best)
        if improved:
            self.best = value
            if self.action == "warn_and_checkpoint_best":
                self.best_path = os.path.join(self._dirpath(trainer), f"best_{self.metric.replace('/', '-')}.ckpt")
                save_checkpoint(trainer, self.best_path)
        finding = loss_metric_divergence(self.history, **self.rule_settings()["LOSS_METRIC_DIVERGENCE"])
        if self._raise(trainer, {"LOSS_METRIC_DIVERGENCE": finding}) and self.best_path:
            rank_zero_warn(f"The best {self.metric} ({self.best:.3f}) is kept in {self.best_path}.")
        if self.action == "stop":
            self._stop(trainer, finding is not None, f"{self.metric} diverged from {self.loss}")

    def rule_settings(self) -> dict[str, dict[str, Any]]:
        return {
            "LOSS_METRIC_DIVERGENCE": {
                "metric": self.metric,
                "loss": self.loss,
                "mode": self.mode,
                "min_drop": self.min_drop,
                "patience": self.patience,
            }
        }

    def _compact(self) -> None:
        """Keep the history growing with the rounds, not the logging steps (`callbacks/history_compaction.py`): the
        rules read the loss only as its median between rounds, and the non-finite counts only where they are not 0."""
        rounds = self.history.series(self.metric)
        for tag in self.history.tags_with_prefix("train/"):
            compact_between_rounds(self.history, tag, rounds, median_at_round)
        drop_zeros_before(self.history, tags.NONFINITE_LOSS_STEPS)

    def _logged_losses(self, trainer: Trainer, losses: dict[str, torch.Tensor]) -> dict[str, float]:
        """The monitored loss and every loss term that is not finite, as the module logs them at this step (it logs
        each term of `losses` as `train/<term>`; one read of the device; rank 0's values on every rank, a collective
        under DDP)."""
        values = dict(zip(losses, torch.stack(list(losses.values())).tolist())) if losses else {}
        values = broadcast_object(trainer, values)
        logged_nonfinite = {tag for tag, v in values.items() if not math.isfinite(v) and tag != tags.TRAIN_LOSS}
        return {tag: v for tag, v in values.items() if tag == self.loss or tag in logged_nonfinite}

    def _stop(self, trainer: Trainer, flag: bool, reason: str) -> None:
        if any_rank(trainer, flag):
            trainer.should_stop = True
            self.stopped_reason = self.stopped_reason or reason

    def _metric_value(self, trainer: Trainer) -> float | None:
        if self.metric is None:
            chosen = logged_quality_metric(trainer.callback_metrics)
            if chosen is None:
                candidates = ", ".join(repr(metric) for metric, _ in QUALITY_METRICS)
                self._warn_missing(trainer, f"quality measure ({candidates})")
                return None
            self.metric, mode = chosen
            self.mode = self.mode or mode
        for name in (self.metric, self.metric + "_epoch"):
            if name in trainer.callback_metrics:
                value = float(trainer.callback_metrics[name])
                return value if math.isfinite(value) else None
        self._warn_missing(trainer, repr(self.metric))
        return None

    def _warn_missing(self, trainer: Trainer, wanted: str) -> None:
        if not self._missing_warned:
            self._missing_warned = True
            available = ", ".join(sorted(k for k in trainer.callback_metrics if k.startswith("val/"))) or "none"
            rank_zero_warn(f"DivergenceMonitor found no {wanted} in the logged metrics (val/ metrics: {available}).")

    def _dirpath(self, trainer: Trainer) -> str:
        return self.dirpath or os.path.join(trainer.log_dir or trainer.default_root_dir, "checkpoints")

    def _rank_local_sums(self) -> list[RunningSums]:
        return [self._nonfinite]

    def _extra_state(self) -> dict[str, Any]:
        return {
            "nonfinite": self._nonfinite.state_dict(),
            "best": self.best,
            "best_path": self.best_path,
            "stopped_reason": self.stopped_reason,
            "metric": self.metric,
            "mode": self.mode,
        }

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self._nonfinite.load_state_dict(state["nonfinite"])
        self.best, self.best_path, self.stopped_reason = state["best"], state["best_path"], state["stopped_reason"]
        if self.configured_metric is None:  # the metric the run chose at its first validation
            self.metric, self.mode = state.get("metric"), self.mode or state.get("mode")


def first_element(loss: torch.Tensor) -> torch.Tensor:
    """A loss as a 0-dim tensor: itself when it is one (no op dispatched), else its first element."""
    return loss if loss.dim() == 0 else loss.reshape(-1)[0]
