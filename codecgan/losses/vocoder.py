"""The vocoder losses of HiFi-GAN and BigVGAN: feature matching with the logits and x2, and the log-mel L1.

The adversarial terms are HiFi-GAN's least squares, summed over sub-discriminators: `adversarial.py`'s
`discriminator_loss` / `generator_adversarial_loss` with `kind="least_squares"` compute them. BigVGAN-v2's
multi-scale mel loss is DAC's: `mel.MultiScaleMelLoss(sample_rate)` with its defaults (7 scales, log10,
clamp 1e-5, no magnitude term), weighted 15 in the v2 configs. The log-mel itself, `HiFiGANLogMel`, is a model part
(`codecgan.models.hifigan_mel`, the vocoders' front-end); it is imported here for the mel loss.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from codecgan.losses.adversarial import DiscriminatorOutputs
from codecgan.models.hifigan_mel import HiFiGANLogMel
from codecgan.models.precision import at_least_float32

HIFIGAN_FEATURE_WEIGHT = 2.0  # "equates to lambda=2.0" (HiFi-GAN, BigVGAN)
HIFIGAN_MEL_WEIGHT = 45.0  # HiFi-GAN V1-V3 and BigVGAN v1; BigVGAN-v2's multi-scale loss uses 15


def vocoder_feature_loss(
    real_outputs: DiscriminatorOutputs, fake_outputs: DiscriminatorOutputs, include_logits: bool = True
) -> Tensor:
    """HiFi-GAN's feature matching: `2 * Σ_k Σ_j mean|real_kj - fake_kj|` over every map, logits included
    (`include_logits=False` leaves each last map out, as BigVGAN's CQT discriminator does).

    Unlike the codec's `feature_matching_loss` (DAC's, without logits and unweighted), the weight 2 is inside, as
    in HiFi-GAN's and BigVGAN's `feature_loss`. Real maps are treated as constants by the caller (detached or
    computed under `no_grad`). A scalar in fp32.
    """
    if len(real_outputs) != len(fake_outputs) or not real_outputs:
        raise ValueError(
            "real and fake outputs need the same, non-zero number of sub-discriminators; got "
            f"{len(real_outputs)} and {len(fake_outputs)}."
        )
    terms = []
    for real_maps, fake_maps in zip(real_outputs, fake_outputs):
        if len(real_maps) != len(fake_maps):
            raise ValueError(f"real and fake outputs have {len(real_maps)} and {len(fake_maps)} feature maps.")
        kept = len(real_maps) if include_logits else len(real_maps) - 1
        for real, fake in zip(real_maps[:kept], fake_maps[:kept]):
            terms.append((at_least_float32(real) - at_least_float32(fake)).abs().mean())
    return HIFIGAN_FEATURE_WEIGHT * sum(terms[1:], terms[0])


class HiFiGANMelLoss(nn.Module):
    """`L1(log-mel(estimate), log-mel(reference))`, unweighted; HiFi-GAN multiplies it by 45.

    Args:
        log_mel_kwargs: `HiFiGANLogMel`'s arguments (HiFi-GAN computes the loss with `fmax_for_loss = None`).

    Shapes: `estimate, reference: [B, 1, T]` -> scalar.
    """

    def __init__(self, **log_mel_kwargs: float | int | None) -> None:
        super().__init__()
        self.log_mel = HiFiGANLogMel(**{"f_max": None, **log_mel_kwargs})

    def forward(self, estimate: Tensor, reference: Tensor) -> Tensor:
        if estimate.shape != reference.shape:
            raise ValueError(
                f"estimate {tuple(estimate.shape)} and reference {tuple(reference.shape)} must have the same shape."
            )
        return F.l1_loss(self.log_mel(estimate), self.log_mel(reference))
