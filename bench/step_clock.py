"""Timing of training steps inside a Lightning fit: CUDA events around each batch and around GANModule's phases.

No host sync is added inside the timed window: events are recorded on the stream and read after the fit; the
window's wall time takes one sync at each end.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import lightning as L
import torch

from bench.precision_variants import dynamo_counts

PHASES = {"generator_forward": "G forward", "_discriminator_step": "D step", "_generator_step": "G step"}


class Stamp:
    """A point in time on the device's stream (a CUDA event) or, on a CPU, the host clock."""

    def __init__(self) -> None:
        if torch.cuda.is_available():
            self.event = torch.cuda.Event(enable_timing=True)
            self.event.record()
        else:
            self.seconds = time.perf_counter()

    def ms_until(self, later: "Stamp") -> float:
        if torch.cuda.is_available():
            return self.event.elapsed_time(later.event)
        return 1000 * (later.seconds - self.seconds)


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


class StepClock(L.Callback):
    """Times the steps after `warmup`: wall time of the window, and per-step phase stamps."""

    def __init__(self, module: L.LightningModule, warmup: int) -> None:
        self.warmup = warmup
        self.steps: list[dict[str, tuple[Stamp, Stamp]]] = []
        self.window_seconds = float("nan")
        self.dynamo_at_start: dict[str, int] = {}
        self.dynamo_at_end: dict[str, int] = {}
        module._bench_clock = self  # the phase wrappers look the current clock up at call time
        if not getattr(module, "_bench_wrapped", False):
            for method in PHASES:
                _wrap_phase(module, method)
            module._bench_wrapped = True

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == self.warmup:
            synchronize()
            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()
            self.dynamo_at_start = dynamo_counts()
            self._wall = time.perf_counter()
        self._current: dict[str, Any] = {"step": Stamp()}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._current["step"] = (self._current["step"], Stamp())
        if batch_idx >= self.warmup:
            self.steps.append(self._current)
        if batch_idx == trainer.max_steps - 1:
            synchronize()
            self.window_seconds = time.perf_counter() - self._wall
            self.dynamo_at_end = dynamo_counts()

    def record(self, phase: str, start: Stamp, end: Stamp) -> None:
        self._current[phase] = (start, end)

    def phase_ms(self) -> dict[str, float]:
        """Median milliseconds per step of each phase and of the whole step (GPU timeline)."""
        durations = [{name: start.ms_until(end) for name, (start, end) in step.items()} for step in self.steps]
        for step in durations:
            step["other"] = step["step"] - sum(step.get(name, 0.0) for name in PHASES.values())
        return {
            name: statistics.median(step[name] for step in durations if name in step)
            for name in ["step", *PHASES.values(), "other"]
            if any(name in step for step in durations)
        }


def _wrap_phase(module: L.LightningModule, method: str) -> None:
    original = getattr(module, method)

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = Stamp()
        result = original(*args, **kwargs)
        module._bench_clock.record(PHASES[method], start, Stamp())
        return result

    setattr(module, method, timed)
