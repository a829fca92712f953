"""Count what one training batch asks of the device, from the host's side: ATen ops and host reads.

On a GPU the host runs ahead of the device only as long as it neither waits for a result nor drowns in small
ops; both are visible on the CPU too, where they can be counted exactly and repeatably:

- ops dispatched per batch, inside and outside the optimizers' ``step`` (a ``TorchDispatchMode`` sees every ATen
  op below autograd, the backward's included);
- host reads per batch: ``aten._local_scalar_dense`` is what ``.item()``, ``bool()``, ``float()`` and ``int()`` of a
  tensor dispatch, and on a GPU each one stops the host until the device has caught up.

``BatchDispatchCounter`` is a callback that counts one chosen batch of a real ``Trainer.fit``.
"""

from __future__ import annotations

import collections
import contextlib
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import lightning as L
from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook
from torch.utils._python_dispatch import TorchDispatchMode

HOST_READ = "aten._local_scalar_dense.default"


@dataclass
class DispatchCounts:
    """Ops dispatched outside and inside optimizer steps, by name, and where each host read came from."""

    outside: collections.Counter = field(default_factory=collections.Counter)
    inside: collections.Counter = field(default_factory=collections.Counter)
    host_read_stacks: list[str] = field(default_factory=list)  # outside the optimizers

    @property
    def ops_outside(self) -> int:
        return sum(self.outside.values())

    @property
    def ops_inside(self) -> int:
        return sum(self.inside.values())

    @property
    def host_reads(self) -> int:
        return self.outside[HOST_READ] + self.inside[HOST_READ]


class _CountingMode(TorchDispatchMode):
    def __init__(self, counts: DispatchCounts, keep_stacks: bool) -> None:
        super().__init__()
        self.counts = counts
        self.keep_stacks = keep_stacks
        self.in_optimizer = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func)
        (self.counts.inside if self.in_optimizer else self.counts.outside)[name] += 1
        if name == HOST_READ and self.keep_stacks and not self.in_optimizer:
            self.counts.host_read_stacks.append("".join(traceback.format_stack(limit=12)[:-2]))
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def counting_ops() -> Iterator[DispatchCounts]:
    """Count every ATen op dispatched inside the ``with`` block (all under ``outside``: no optimizer is told apart)."""
    counts = DispatchCounts()
    with _CountingMode(counts, keep_stacks=False):
        yield counts


class BatchDispatchCounter(L.Callback):
    """Counts the ATen ops and host reads of training batch ``batch_index`` (0-based, counted per fit).

    The count runs from ``on_train_batch_start`` to ``on_train_batch_end`` of that batch, so it covers the
    training step, the optimizers, the schedulers and every callback's batch-end work that runs before this one
    (put it last in the callback list to cover them all). Optimizer steps are told apart with torch's global
    optimizer step hooks.
    """

    def __init__(self, batch_index: int, keep_stacks: bool = False) -> None:
        self.batch_index = batch_index
        self.keep_stacks = keep_stacks
        self.counts = DispatchCounts()
        self._mode: _CountingMode | None = None
        self._hooks: list[Any] = []
        self._seen = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._seen == self.batch_index:
            self._mode = _CountingMode(self.counts, self.keep_stacks)
            mode = self._mode

            def enter(optimizer, args, kwargs):
                mode.in_optimizer += 1

            def leave(optimizer, args, kwargs):
                mode.in_optimizer -= 1

            self._hooks = [
                register_optimizer_step_pre_hook(enter),
                register_optimizer_step_post_hook(leave),
            ]
            mode.__enter__()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._mode is not None:
            self._mode.__exit__(None, None, None)
            for hook in self._hooks:
                hook.remove()
            self._mode, self._hooks = None, []
        self._seen += 1
