"""LossSpikes: a loss term that jumps far above its recent spread for a logging point or two and comes back."""

from __future__ import annotations

from typing import Any, Mapping

import torch
from lightning.pytorch import LightningModule, Trainer

from callbacks.base import DiagnosticCallback, require
from codecgan.cadence import is_logging_step
from codecgan.diagnosis.history import MetricHistory, Point
from codecgan.diagnosis.rules.schedule_and_data import (
    SPIKE_RECOVERY,
    SPIKE_REPEATS,
    Spike,
    find_spikes,
    loss_series,
    spike_finding,
)

# Points kept per loss term: a spike's trailing window and recovery, with room. The spikes found are kept in the state,
# so dropping older points does not change LOSS_SPIKE's answer.
HISTORY_POINTS = 512


class LossSpikes(DiagnosticCallback):
    """Keeps every loss term of the outputs `losses` (`loss_g`, `loss_d`, `loss_mel`, ...) at each logging step, the
    single-batch values the module logs as `train/<term>`, and judges each new point against the median + 10·MAD of
    the 50 before it once the next few points show whether it came back.

    Logs nothing of its own (the module logs the losses). Why: a transient spike (AcademiCodec#27: a feature loss of
    55178) is one bad batch when it happens once and a pattern (bad files, too high a learning rate, missing
    gradient clipping) when it repeats. Catches LOSS_SPIKE; an alarm starts at the `repeats`-th spike (single spikes
    are info, which raises no alarm). The spikes found are kept in the state, so the count covers the whole run while
    each logging step judges only the newest points; `codecgan diagnose` finds the same spikes in the logs.
    """

    codes = ("LOSS_SPIKE",)

    def __init__(self, repeats: int = SPIKE_REPEATS) -> None:
        super().__init__()
        self.history = MetricHistory(max_points=HISTORY_POINTS)
        require(
            isinstance(repeats, int) and repeats >= 1,
            f"LossSpikes repeats must be a positive integer, got {repeats!r}.",
        )
        self.repeats = repeats
        self.spikes: list[Spike] = []

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not is_logging_step(trainer):
            return
        losses = (outputs.get("losses") or {}) if isinstance(outputs, Mapping) else {}
        names = sorted(name for name, value in losses.items() if isinstance(value, torch.Tensor))
        if names:  # one read of this logging step's values
            values = torch.stack([losses[name].detach().float().reshape(()) for name in names]).tolist()
            self._record(trainer, pl_module, {f"train/{n}": v for n, v in zip(names, values)}, log=False)
            self._judge_newest()
            self._raise(trainer, {"LOSS_SPIKE": spike_finding(self.spikes, self.repeats)})
        self.alarms.log_active(pl_module)

    def rule_settings(self) -> dict[str, dict[str, Any]]:
        return {"LOSS_SPIKE": {"repeats": self.repeats}}

    def _judge_newest(self) -> None:
        """Judge the points whose spike status the newest point can still decide (the last SPIKE_RECOVERY + 1)."""
        known = {(s.tag, s.point.step, s.point.epoch) for s in self.spikes}
        for tag, points in loss_series(self.history).items():
            for spike in find_spikes(tag, points, start=len(points) - SPIKE_RECOVERY - 1):
                if (tag, spike.point.step, spike.point.epoch) not in known:
                    self.spikes.append(spike)

    def _extra_state(self) -> dict[str, Any]:
        return {
            "spikes": [
                [s.tag, s.point.step, s.point.epoch, s.point.value, s.baseline, s.threshold, s.peak,
                 s.back.step, s.back.epoch, s.back.value]
                for s in self.spikes
            ]
        }  # fmt: skip

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self.spikes = [
            Spike(tag, Point(step, epoch, value), baseline, threshold, peak, Point(back_step, back_epoch, back_value))
            for tag, step, epoch, value, baseline, threshold, peak, back_step, back_epoch, back_value in state["spikes"]
        ]
