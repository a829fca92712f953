"""Count what one training batch asks of the device, from the host's side: ATen ops and host reads.

On a GPU the host runs ahead of the device only as long as it neither waits for a result nor drowns in small
ops; both are visible on the CPU too, where they can be counted exactly and repeatably:

- ops dispatched per batch, inside and outside the optimizers' ``step`` (a ``TorchDispatchMode`` sees every ATen
  op below autograd, the backward's included);
- host reads per batch: ``aten._local_scalar_dense`` is what ``.item()``, ``bool()``, ``float()`` and ``int()`` of a
  tensor dispatch, and on a GPU each one stops the host until the device has caught up.

``BatchDispatchCounter`` is a callback that counts one chosen batch of a real ``Trainer.fit``; the counting itself
(``counting_ops``, torch only) is `bench/op_counting.py`.
"""

from __future__ import annotations

import contextlib

import lightning as L

from bench.op_counting import HOST_READ, DispatchCounts, counting_ops

__all__ = ["HOST_READ", "BatchDispatchCounter", "DispatchCounts", "counting_ops"]


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
        self._counting: contextlib.ExitStack | None = None
        self._seen = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._seen == self.batch_index:
            self._counting = contextlib.ExitStack()
            self.counts = self._counting.enter_context(
                counting_ops(split_optimizer_steps=True, keep_stacks=self.keep_stacks)
            )

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._counting is not None:
            self._counting.close()
            self._counting = None
        self._seen += 1
