"""Cross-rank reductions for the diagnostic callbacks: sums of counts and gathers of rows, never means of rates.

Every function here is a collective under DDP: call it on every rank at the same point (never inside a
rank-zero-only branch), in one of the calling callback's sync moments (`callbacks/sync_moments.py`); each first
votes on whether a rank's hook of that callback failed, and runs nothing that can fail between that vote and its
collective. In a single process each is the identity and votes nothing.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from lightning.pytorch import Trainer

from callbacks.sync_moments import before_collective


def reduce_sum(trainer: Trainer, values: torch.Tensor) -> torch.Tensor:
    """The element-wise sum of `values` over all ranks (a new tensor; `values` is left unchanged)."""
    values = values.clone()
    if trainer.world_size <= 1:
        return values
    before_collective(trainer)
    return trainer.strategy.reduce(values, reduce_op="sum")


def all_gather(trainer: Trainer, values: torch.Tensor) -> torch.Tensor:
    """`[world, *values.shape]`: every rank's `values` (the same shape on every rank), in rank order."""
    if trainer.world_size <= 1:
        return values[None]
    before_collective(trainer)
    return trainer.strategy.all_gather(values)


def gather_rows(trainer: Trainer, rows: torch.Tensor) -> torch.Tensor:
    """All ranks' rows `[n_rank, k]` concatenated to `[sum n_rank, k]`, in rank order; ranks may hold different n."""
    if trainer.world_size <= 1:
        return rows
    counts = all_gather(trainer, torch.tensor([rows.shape[0]], device=rows.device)).reshape(-1).tolist()
    padded = torch.zeros((max(counts), *rows.shape[1:]), dtype=rows.dtype, device=rows.device)
    padded[: rows.shape[0]] = rows
    gathered = all_gather(trainer, padded)  # [world, max_n, k]
    return torch.cat([gathered[rank, :n] for rank, n in enumerate(counts)])


def broadcast_object(trainer: Trainer, value: Any) -> Any:
    """Rank 0's `value` (any picklable object) on every rank."""
    if trainer.world_size <= 1:
        return value
    before_collective(trainer)
    return trainer.strategy.broadcast(value, src=0)


def copy_from_rank_zero(trainer: Trainer, tensors: Sequence[torch.Tensor]) -> None:
    """Overwrite each tensor in place with rank 0's (one vote for all: nothing runs between the broadcasts)."""
    if trainer.world_size <= 1:
        return
    before_collective(trainer)
    for tensor in tensors:
        torch.distributed.broadcast(tensor, src=0)


def any_rank(trainer: Trainer, decision: bool) -> bool:
    """Whether `decision` holds on any rank."""
    if trainer.world_size > 1:
        before_collective(trainer)
    return trainer.strategy.reduce_boolean_decision(decision, all=False)


def save_checkpoint(trainer: Trainer, path: str) -> None:
    """`trainer.save_checkpoint(path)`, which under DDP ends with a barrier (and may gather in the module's hook)."""
    if trainer.world_size > 1:
        before_collective(trainer)
    trainer.save_checkpoint(path)
