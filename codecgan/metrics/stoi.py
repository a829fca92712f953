"""Per-clip STOI with undefined clips reported as NaN instead of a placeholder score."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import Tensor


def stoi_scores(
    reference: Tensor,
    estimate: Tensor,
    length: Tensor | None = None,
    sample_rate: int = 16000,
    extended: bool = False,
) -> Tensor:
    """STOI (``pystoi``, as torchmetrics uses) of each clip: ``[B, 1, T]`` pairs -> ``[B]`` float32.

    Each clip is cut to ``length[i]`` samples first, so zero padding does not count. STOI is
    undefined when fewer than 30 frames of 25.6 ms (about 0.4 s) of the reference are above its
    silence threshold; pystoi then warns and returns 1e-5, which would drag the mean down. Here that
    clip is NaN, so callers count it as a failure instead; so is a clip whose reference is all zeros
    (pystoi keeps every frame of it and scores 0).
    """
    from pystoi import stoi

    references = reference.detach().float().reshape(reference.shape[0], -1).cpu().numpy()
    estimates = estimate.detach().float().reshape(estimate.shape[0], -1).cpu().numpy()
    lengths = [references.shape[1]] * len(references) if length is None else length.tolist()
    scores = []
    for clean, enhanced, samples in zip(references, estimates, lengths):
        if not np.any(clean[:samples]):
            scores.append(float("nan"))
            continue
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            score = float(stoi(clean[:samples], enhanced[:samples], sample_rate, extended=extended))
        undefined = any("Not enough STFT frames" in str(warning.message) for warning in caught)
        scores.append(float("nan") if undefined else score)
    return torch.tensor(scores, dtype=torch.float32)
