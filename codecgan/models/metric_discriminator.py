"""MetricGAN's metric discriminator: predicts the normalized PESQ of an estimate from spectra."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from codecgan.models.learnable_sigmoid import LearnableSigmoid


def _downsample(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [
        spectral_norm(nn.Conv2d(in_channels, out_channels, 4, stride=2, padding=1, bias=False)),
        nn.InstanceNorm2d(out_channels, affine=True),
        nn.PReLU(out_channels),
    ]


class MetricDiscriminator(nn.Module):
    """``forward(clean_magnitude, estimate_magnitude) -> [B]`` in ``(0, 1)``: a learned stand-in for
    ``(PESQ(clean, estimate) - 1) / 3.5``, CMGAN's and MP-SENet's discriminator.

    Magnitudes are ``[B, 1, F, T']`` or ``[B, F, T']`` compressed spectra (any F, T' >= 16 frames).
    Four spectral-norm strided convolutions (channels ``c, 2c, 4c, 8c``) with instance norm and
    PReLU, a global max pool, a spectral-norm MLP with dropout and a learnable sigmoid. Spectral norm
    bounds the discriminator's Lipschitz constant, so the generator's adversarial gradient stays
    bounded even when the discriminator fits its targets well.

    Args:
        channels: channels of the first convolution (CMGAN: 16, about 0.18 M parameters).
        dropout: before the last layer (CMGAN: 0.3).
    """

    def __init__(self, channels: int = 16, dropout: float = 0.3) -> None:
        super().__init__()
        if channels < 1 or not 0 <= dropout < 1:
            raise ValueError(f"channels must be >= 1 and dropout in [0, 1), got {channels} and {dropout}.")
        widths = [2, channels, 2 * channels, 4 * channels, 8 * channels]
        self.features = nn.Sequential(
            *(layer for pair in zip(widths, widths[1:]) for layer in _downsample(*pair)),
            nn.AdaptiveMaxPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Sequential(
            spectral_norm(nn.Linear(8 * channels, 4 * channels)),
            nn.Dropout(dropout),
            nn.PReLU(4 * channels),
            spectral_norm(nn.Linear(4 * channels, 1)),
            LearnableSigmoid(1, beta=1.0),
        )

    def forward(self, clean_magnitude: Tensor, estimate_magnitude: Tensor) -> Tensor:
        if clean_magnitude.shape != estimate_magnitude.shape:
            raise ValueError(
                f"clean {tuple(clean_magnitude.shape)} and estimate {tuple(estimate_magnitude.shape)} "
                "magnitudes must have the same shape."
            )
        if clean_magnitude.dim() == 4:
            clean_magnitude, estimate_magnitude = clean_magnitude.squeeze(1), estimate_magnitude.squeeze(1)
        pair = torch.stack((clean_magnitude, estimate_magnitude), dim=1)  # [B, 2, F, T']
        return self.head(self.features(pair)).squeeze(1)
