"""Scoring an estimate whose length differs from its reference's, without hiding the difference."""

from __future__ import annotations

import torch
from torch import Tensor


def cut_to_common_length(estimate: Tensor, reference: Tensor, length: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Cut ``estimate`` ``[B, 1, T_est]`` and ``reference`` ``[B, 1, T_ref]`` to ``min(T_est, T_ref)`` samples and
    clamp the true lengths ``length`` ``[B]`` to it.

    A generator whose output is shorter or longer than its input (an ISTFT without ``length=``) should be scored on
    the samples both signals have, not stop training with a shape error: the SignalStats callback counts such clips
    (``diag/length_mismatch``, finding LENGTH_MISMATCH), so cutting here hides nothing. Returns the inputs unchanged
    when the lengths agree."""
    samples = min(estimate.shape[-1], reference.shape[-1])
    if estimate.shape[-1] == reference.shape[-1]:
        return estimate, reference, length
    return estimate[..., :samples], reference[..., :samples], length.clamp(max=samples)


def pad_to_batch(estimates: list[Tensor], samples: int) -> tuple[Tensor, Tensor]:
    """Estimates ``[1, 1, T_i]`` of different lengths as one ``[B, 1, max(samples, T_i)]`` batch, right-padded with
    zeros, and their lengths ``[B]`` (int64, on their device): what an utterance-by-utterance step returns."""
    width = max([samples, *(estimate.shape[-1] for estimate in estimates)])
    batch = torch.cat([torch.nn.functional.pad(estimate, (0, width - estimate.shape[-1])) for estimate in estimates])
    lengths = torch.tensor([estimate.shape[-1] for estimate in estimates], device=batch.device)
    return batch, lengths
