"""A minimal stand-in for Trainer and LightningModule, enough to drive the diagnostic callbacks' hooks in
milliseconds: one process, identity reductions, and a module that records what is logged."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn


class FakeStrategy:
    root_device = torch.device("cpu")

    def __init__(self, world_size: int = 1, gathered: torch.Tensor | None = None) -> None:
        self.world_size = world_size
        self.gathered = gathered  # what all_gather returns under a fake world_size > 1
        self.decisions: list[bool] = []

    def reduce(self, tensor: torch.Tensor, reduce_op: str = "mean") -> torch.Tensor:
        return tensor * self.world_size if reduce_op == "sum" else tensor

    def all_gather(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.gathered is not None:
            return self.gathered
        return torch.stack([tensor] * self.world_size)

    def reduce_boolean_decision(self, decision: bool, all: bool = True) -> bool:
        self.decisions.append(decision)
        return decision


class FakeTrainer(SimpleNamespace):
    """`logged_step` is Lightning's batch counter; `advance()` moves to the next batch."""

    def __init__(
        self, log_every_n_steps: int = 1, world_size: int = 1, loggers: list | None = None, **kwargs: Any
    ) -> None:
        defaults = dict(
            global_rank=0,
            is_global_zero=True,
            strategy=FakeStrategy(world_size),
            loggers=loggers or [],
            fit_loop=SimpleNamespace(epoch_loop=SimpleNamespace(_batches_that_stepped=0)),
            global_step=0,
            current_epoch=0,
            sanity_checking=False,
            training=True,
            state=SimpleNamespace(fn="fit"),
            callback_metrics={},
            callbacks=[],
            should_stop=False,
            saved_checkpoints=[],
            log_dir=None,
            default_root_dir="/tmp",
        )
        super().__init__(log_every_n_steps=log_every_n_steps, world_size=world_size, **{**defaults, **kwargs})

    def advance(self) -> None:
        self.fit_loop.epoch_loop._batches_that_stepped += 1
        self.global_step += 1

    def save_checkpoint(self, path: str) -> None:
        self.saved_checkpoints.append(path)


class FakeModule(nn.Module):
    """Records every `log` call as (name, value, kwargs); has a generator and a discriminator child."""

    def __init__(self) -> None:
        super().__init__()
        self.generator = nn.Linear(2, 2)
        self.discriminator = nn.Linear(2, 1)
        self.logged: list[tuple[str, float, dict]] = []

    def log(self, name: str, value: Any, **kwargs: Any) -> None:
        self.logged.append((name, float(value), kwargs))

    def last(self, name: str) -> float:
        return [value for logged, value, _ in self.logged if logged == name][-1]

    def names(self) -> set[str]:
        return {name for name, _, _ in self.logged}


def train_steps(callback: Any, trainer: FakeTrainer, module: FakeModule, outputs: list[dict]) -> None:
    """Call `on_train_batch_end` once per outputs dict, advancing the batch counter after each."""
    for batch_idx, output in enumerate(outputs):
        callback.on_train_batch_end(trainer, module, output, None, batch_idx)
        trainer.advance()


def validation_round(callback: Any, trainer: FakeTrainer, module: FakeModule, outputs: list[dict]) -> None:
    if hasattr(callback, "on_validation_epoch_start"):
        callback.on_validation_epoch_start(trainer, module)
    for batch_idx, output in enumerate(outputs):
        callback.on_validation_batch_end(trainer, module, output, None, batch_idx)
    callback.on_validation_epoch_end(trainer, module)
    if hasattr(callback, "on_validation_end"):  # after Lightning has computed the module's epoch metrics
        callback.on_validation_end(trainer, module)


def same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor):
        return (
            isinstance(b, torch.Tensor)
            and a.shape == b.shape
            and bool(torch.equal(a.nan_to_num(-7.0), b.nan_to_num(-7.0)))
        )
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return a == b
