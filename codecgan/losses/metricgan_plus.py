"""MetricGAN+'s least-squares metric losses, as SpeechBrain's VoiceBank recipe computes them
(``compute_objectives`` with ``compute_cost = speechbrain.nnet.losses.mse_loss``).

``D(x, y)`` is ``MetricGANPlusDiscriminator`` on features of the degraded ``x`` and reference ``y``
(``[B, 1]``); ``Q(x, y) = (PESQ_wb(x, y) + 0.5) / 5`` is the recipe's target, computed outside the graph.
Each loss is a mean over the batch; the recipe steps the discriminator once per term.
"""

from __future__ import annotations

import torch
from torch import Tensor


def metricgan_plus_generator_loss(d_enhanced: Tensor, target: float = 1.0) -> Tensor:
    """``mean_b (D(enhanced_b, clean_b) − 1)²``: the generator asks for the top score.

    ``d_enhanced``: ``[B, 1]`` discriminator outputs on (enhanced, clean); the recipe's target is 1
    (its spectral MSE term has weight 0)."""
    return torch.mean((d_enhanced - target) ** 2)


def metricgan_plus_discriminator_loss(d_output: Tensor, target_score: Tensor | float) -> Tensor:
    """``mean_b (D(x_b, clean_b) − q_b)²``, one of the recipe's three discriminator terms:

    - clean: ``x = clean``, ``q = 1``;
    - enhanced (current or replayed from history): ``x = enhanced``, ``q = Q(enhanced, clean)``;
    - noisy: ``x = noisy``, ``q = Q(noisy, clean)``.

    ``d_output``: ``[B, 1]``; ``target_score``: ``[B, 1]`` or a number."""
    return torch.mean((d_output - target_score) ** 2)
