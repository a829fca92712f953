"""Cross-rank reductions for the diagnostic callbacks: sums of counts and gathers of rows, never means of rates.

Every function here is a collective under DDP: call it on every rank at the same point (never inside a
rank-zero-only branch), and it is the identity in a single process.
"""

from __future__ import annotations

import torch
from lightning.pytorch import Trainer


def reduce_sum(trainer: Trainer, values: torch.Tensor) -> torch.Tensor:
    """The element-wise sum of `values` over all ranks (a new tensor; `values` is left unchanged)."""
    if trainer.world_size <= 1:
        return values.clone()
    return trainer.strategy.reduce(values.clone(), reduce_op="sum")


def gather_rows(trainer: Trainer, rows: torch.Tensor) -> torch.Tensor:
    """All ranks' rows `[n_rank, k]` concatenated to `[sum n_rank, k]`, in rank order; ranks may hold different n."""
    if trainer.world_size <= 1:
        return rows
    count = torch.tensor([rows.shape[0]], device=rows.device)
    counts = trainer.strategy.all_gather(count).reshape(-1).tolist()
    padded = torch.zeros((max(counts), *rows.shape[1:]), dtype=rows.dtype, device=rows.device)
    padded[: rows.shape[0]] = rows
    gathered = trainer.strategy.all_gather(padded)  # [world, max_n, k]
    return torch.cat([gathered[rank, :n] for rank, n in enumerate(counts)])
