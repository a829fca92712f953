"""Count the ATen ops a block of code dispatches, and its host reads; depends on torch only.

``aten._local_scalar_dense`` is what ``.item()``, ``bool()``, ``float()`` and ``int()`` of a tensor dispatch: on a
GPU each one stops the host until the device has caught up. A ``TorchDispatchMode`` sees every ATen op below
autograd, the backward's included. torch only, so that a script running in a reference's own environment (DAC's,
`bench/dac_own_step.py`) counts with the same code as codecgan's benchmarks.
"""

from __future__ import annotations

import collections
import contextlib
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field

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
def counting_ops(split_optimizer_steps: bool = False, keep_stacks: bool = False) -> Iterator[DispatchCounts]:
    """Count every ATen op dispatched inside the ``with`` block.

    Args:
        split_optimizer_steps: count the ops of every ``torch.optim.Optimizer.step`` under ``inside`` (told apart
            with torch's global optimizer step hooks); otherwise everything is counted under ``outside``.
        keep_stacks: keep the Python stack of each host read outside the optimizers (``host_read_stacks``).
    """
    counts = DispatchCounts()
    mode = _CountingMode(counts, keep_stacks)
    hooks = []
    if split_optimizer_steps:

        def enter(optimizer, args, kwargs) -> None:
            mode.in_optimizer += 1

        def leave(optimizer, args, kwargs) -> None:
            mode.in_optimizer -= 1

        hooks = [register_optimizer_step_pre_hook(enter), register_optimizer_step_post_hook(leave)]
    try:
        with mode:
            yield counts
    finally:
        for hook in hooks:
            hook.remove()
