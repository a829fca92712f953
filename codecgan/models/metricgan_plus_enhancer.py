"""MetricGAN+'s enhancer as the training loop and ``codecgan predict`` call it: noisy audio in, enhanced audio out."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from codecgan.models.metricgan_plus import MetricGANPlusGenerator
from codecgan.models.metricgan_plus_features import metricgan_plus_features, resynthesize_with_noisy_phase


@dataclass
class MaskedFeaturesOutput:
    """What ``MetricGANPlusEnhancerNet`` returns.

    audio: ``[B, 1, T]``, the estimate at the input's level and length.
    features: ``[B, frames, 257]``, the enhanced ``log1p`` magnitude (what the metric discriminator judges).
    noisy_features: ``[B, frames, 257]``, the input's ``log1p`` magnitude.
    """

    audio: Tensor
    features: Tensor
    noisy_features: Tensor


class MetricGANPlusEnhancerNet(nn.Module):
    """``forward(noisy [B, 1, T]) -> MaskedFeaturesOutput``: SpeechBrain's MetricGAN+ forward pass at 16 kHz.

    ``log1p(|STFT|)`` features (512-point FFT, 32 ms hamming window, 16 ms hop), a ``MetricGANPlusGenerator``
    mask clamped below at ``min_mask`` and multiplied with the *log* features, and resynthesis with the noisy
    phase (``codecgan.models.metricgan_plus_features``). ``mask_estimator`` holds SpeechBrain's generator
    weights (``from_speechbrain_state_dict``).

    Args:
        hidden_size: BLSTM units per direction (200 in the recipe).
        min_mask: the mask's floor, so that no bin is removed entirely (0.05 in the recipe).
    """

    sample_rate = 16000

    def __init__(self, hidden_size: int = 200, min_mask: float = 0.05) -> None:
        super().__init__()
        if not 0 <= min_mask < 1.2:
            raise ValueError(f"min_mask must be in [0, 1.2) (the mask's range), got {min_mask}.")
        self.mask_estimator = MetricGANPlusGenerator(hidden_size=hidden_size)
        self.min_mask = min_mask

    def forward(self, noisy: Tensor) -> MaskedFeaturesOutput:
        wav = noisy[:, 0]
        noisy_features = metricgan_plus_features(wav)
        features = self.mask_estimator(noisy_features).clamp(min=self.min_mask) * noisy_features
        audio = resynthesize_with_noisy_phase(torch.expm1(features), wav).unsqueeze(1)
        return MaskedFeaturesOutput(audio, features, noisy_features)

    @torch.no_grad()
    def clamp_mask_slopes(self, maximum: float) -> None:
        """The recipe's guard before each generator step: the learnable sigmoid's slopes at most ``maximum``, a NaN
        slope set to ``maximum``."""
        slope = self.mask_estimator.mask_activation.slope
        slope.copy_(slope.nan_to_num(nan=maximum).clamp(max=maximum))
