"""PESQ scores of one training batch on their way, kept with the spectra they score."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from codecgan.metrics.pesq_pool import PesqHandle, PesqResult

STATE_KEYS = ("clean_magnitude", "estimate_magnitude", "scores", "failure_codes")


@dataclass
class PendingPesq:
    """A batch's PESQ handle with the compressed magnitudes (``[B, 1, F, T']``, detached) that the
    metric discriminator will see next to its targets. Keeping them together is what makes a lagged
    target (``pesq_lag=1``) always meet the estimate it scored, never the next batch's."""

    handle: PesqHandle
    clean_magnitude: Tensor
    estimate_magnitude: Tensor

    @classmethod
    def unscored(cls, clean_magnitude: Tensor, estimate_magnitude: Tensor) -> PendingPesq:
        """A batch that was never scored: NaN scores and zero clips (nothing to count as failed)."""
        scores = np.full(clean_magnitude.shape[0], np.nan)
        return cls(PesqHandle(result=PesqResult(scores, ())), clean_magnitude, estimate_magnitude)

    def result(self) -> PesqResult:
        return self.handle.result()

    def state_dict(self) -> dict[str, Tensor]:
        """Tensors only (waits for the scores): magnitudes, ``scores`` ``[B]`` float64 and
        ``failure_codes`` ``[B]`` int64 (index into ``FAILURE_KINDS``, -1 when scored)."""
        result = self.result()
        return {
            "clean_magnitude": self.clean_magnitude,
            "estimate_magnitude": self.estimate_magnitude,
            "scores": torch.from_numpy(result.scores).to(self.clean_magnitude.device),
            "failure_codes": torch.from_numpy(result.failure_codes()).to(self.clean_magnitude.device),
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Tensor], device: torch.device | str = "cpu") -> PendingPesq:
        """Rebuild a completed ``PendingPesq`` from ``state_dict()``."""
        missing = [key for key in STATE_KEYS if key not in state]
        if missing:
            raise KeyError(f"A PESQ-lag state needs the keys {STATE_KEYS}; {missing} are missing.")
        result = PesqResult.from_codes(state["scores"].cpu().double().numpy(), state["failure_codes"].cpu().numpy())
        return cls(
            PesqHandle(result=result),
            state["clean_magnitude"].to(device),
            state["estimate_magnitude"].to(device),
        )
