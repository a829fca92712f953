"""CodebookUsage: how many of each quantizer's codes the codec actually uses."""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch
from lightning.pytorch import LightningModule, Trainer

from callbacks.base import DiagnosticCallback, require
from callbacks.distributed import reduce_sum
from callbacks.history_compaction import flag_run_ends, flag_runs, keep_recent, thin_runs
from callbacks.sync_moments import every_n_batches
from codecgan.cadence import is_logging_step, logged_step
from codecgan.diagnosis import tags
from codecgan.diagnosis.history import Point
from codecgan.diagnosis.rules import codebook_collapse
from codecgan.diagnosis.rules.training_health import COLLAPSE_ENTROPY_FRACTION, COLLAPSE_PATIENCE


def code_counts(codes: torch.Tensor, codebook_size: int, frames_valid: torch.Tensor | None = None) -> torch.Tensor:
    """`[n_q, K]` counts of each code per quantizer from `codes` `[B, n_q, frames]`, over the valid frames only."""
    batch, n_q, frames = codes.shape
    offsets = torch.arange(n_q, device=codes.device)[None, :, None] * codebook_size
    flat = (codes + offsets).reshape(batch, -1)
    if frames_valid is not None:
        keep = torch.arange(frames, device=codes.device)[None, :] < frames_valid[:, None].to(codes.device)
        weights = keep[:, None, :].expand(batch, n_q, frames).reshape(batch, -1).double()
    else:
        weights = torch.ones_like(flat, dtype=torch.float64)
    # scatter_add_ into a fixed size, not bincount: CUDA bincount reads the maximum back to the host (a sync).
    counts = torch.zeros(n_q * codebook_size, dtype=torch.float64, device=codes.device)
    counts.scatter_add_(0, flat.reshape(-1), weights.reshape(-1))
    return counts.reshape(n_q, codebook_size)


def entropy_bits(counts: torch.Tensor) -> torch.Tensor:
    """`[n_q]` Shannon entropy in bits of each row of `counts` `[n_q, K]` (0 for an empty row)."""
    total = counts.sum(-1, keepdim=True).clamp(min=1)
    p = counts / total
    return torch.where(p > 0, -p * torch.log2(p), 0.0).sum(-1) + 0.0  # + 0.0 turns -0.0 into 0.0


class CodebookUsage(DiagnosticCallback):
    """Measures, per quantizer over windows of `window_steps` batches, the entropy of code usage in bits and as a
    fraction of log2 of the codebook size, and the number of codes unused in the window.

    Reads the codec outputs `codes` `[B, n_q, frames]` and `codebook_size` (frames past each clip's true `length` are
    not counted). Logs `diag/codebook_entropy/<q>`, `diag/codebook_entropy_fraction/<q>` and `diag/dead_codes/<q>` at
    the last step of each window. Why: a collapsed codebook wastes its bitrate while the losses look fine.
    Catches CODEBOOK_COLLAPSE. Under DDP the counts are summed over ranks before the entropy is taken.

    With EMA codebooks (`quantizer: ema`), the outputs also hold `vq_dead_code_restarts`, the codes restarted in the
    step over all codebooks (a device tensor, the same on every rank), logged as `train/vq_dead_code_restarts` on
    logging steps: restarts that never stop mean codes the encoder never reaches.
    """

    codes = ("CODEBOOK_COLLAPSE",)
    sync_moments = {"on_train_batch_end": every_n_batches("window_steps")}  # where a window closes

    def __init__(self, window_steps: int = 100) -> None:
        super().__init__()
        require(
            isinstance(window_steps, int) and window_steps >= 1,
            f"CodebookUsage window_steps must be a positive integer, got {window_steps!r}.",
        )
        self.window_steps = window_steps
        self.counts: torch.Tensor | None = None
        self.codebook_size = 0

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if isinstance(outputs, Mapping) and "codes" in outputs:
            codes, self.codebook_size = outputs["codes"].detach(), int(outputs["codebook_size"])
            frames_valid = None
            if "length" in outputs and "estimate" in outputs:
                samples_per_frame = outputs["estimate"].shape[-1] / codes.shape[-1]
                frames_valid = torch.ceil(outputs["length"].to(codes.device) / samples_per_frame).long()
            counts = code_counts(codes, self.codebook_size, frames_valid)
            self.counts = counts if self.counts is None else self.counts.to(counts.device) + counts
        if isinstance(outputs, Mapping) and "vq_dead_code_restarts" in outputs and is_logging_step(trainer):
            pl_module.log("train/vq_dead_code_restarts", outputs["vq_dead_code_restarts"].float())
        if self.counts is not None and (logged_step(trainer) + 1) % self.window_steps == 0:
            self._close_window(trainer, pl_module)
        if is_logging_step(trainer):
            self.alarms.log_active(pl_module)

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        # A checkpoint holds rank 0's partial window; the other ranks restart theirs from zero after a resume.
        if trainer.global_rank != 0 and self.counts is not None:
            self.counts = torch.zeros_like(self.counts)

    def _close_window(self, trainer: Trainer, pl_module: LightningModule) -> None:
        counts = reduce_sum(trainer, self.counts).cpu()
        self.counts = None
        bits = entropy_bits(counts).tolist()
        dead = (counts == 0).sum(-1).tolist()
        log2_size = math.log2(self.codebook_size) if self.codebook_size > 1 else 1.0
        values = {}
        for q, (b, d) in enumerate(zip(bits, dead)):
            values[f"{tags.CODEBOOK_ENTROPY_PREFIX}{q}"] = b
            values[f"{tags.CODEBOOK_ENTROPY_FRACTION_PREFIX}{q}"] = b / log2_size
            values[f"{tags.DEAD_CODES_PREFIX}{q}"] = float(d)
        self._record(trainer, pl_module, values)
        self._raise(trainer, {"CODEBOOK_COLLAPSE": codebook_collapse(self.history)})
        self._compact()

    def _compact(self) -> None:
        """Keep the history growing with the times a codebook collapses, not with its windows
        (`callbacks/history_compaction.py`). CODEBOOK_COLLAPSE reads each quantizer's entropy fraction through runs
        of windows under the threshold (`flag_run_ends`: where a run is first sustained and where it last held), its
        finite points' lowest value (its last occurrence, kept) and the newest points; it reads the entropy in bits
        and the dead codes only at their last point."""
        for tag in self.history.tags_with_prefix(tags.CODEBOOK_ENTROPY_FRACTION_PREFIX):
            thin_runs(self.history, tag, collapse_labels, flag_run_ends(COLLAPSE_PATIENCE))
        for prefix in (tags.CODEBOOK_ENTROPY_PREFIX, tags.DEAD_CODES_PREFIX):
            for tag in self.history.tags_with_prefix(prefix):
                keep_recent(self.history, tag)

    def _extra_state(self) -> dict[str, Any]:
        return {"counts": None if self.counts is None else self.counts.cpu(), "codebook_size": self.codebook_size}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self.counts = state["counts"]
        self.codebook_size = state["codebook_size"]


def collapse_labels(points: list[Point]) -> list[str | None]:
    """`flag_runs` labels of an entropy-fraction series for CODEBOOK_COLLAPSE, with its lowest finite value (the last
    occurrence, which the recovery check measures from) labelled None, so it stays."""
    labels = flag_runs(lambda v: v < COLLAPSE_ENTROPY_FRACTION, finite_only=True)(points)
    finite = [i for i, p in enumerate(points) if math.isfinite(p.value)]
    if finite:
        labels[min(finite, key=lambda i: (points[i].value, -i))] = None
    return labels
