"""Vocos's generator and discriminator losses, where they are not `codecgan.losses.adversarial`'s.

Vocos 0.1.0 (`vocos.loss`, combined in `vocos.experiment.VocosExp.training_step`):
- mel reconstruction: L1 between `ln(max(mel, 1e-7))` of the two signals' magnitude mel spectrograms
  (`VocosMelLoss`), weighted 45;
- adversarial: hinge, Σ over sub-discriminators, which is `discriminator_loss(kind="hinge")` and
  `generator_adversarial_loss(kind="hinge")` exactly (tests/models/test_vocos_reference.py);
- feature matching: Σ_k Σ_j mean|real_kj - fake_kj| over every entry of a sub-discriminator's list, the logits
  included (`feature_matching_loss_with_logits`); codecgan's `feature_matching_loss` leaves the logits out, as DAC.
Vocos divides each adversarial and feature-matching sum by its number of sub-discriminators and weights the MRD's
terms by `mrd_loss_coeff` (0.1 in its `configs/vocos.yaml`); `per_discriminator` does the division.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from codecgan.losses.adversarial import DiscriminatorOutputs, feature_matching_loss
from codecgan.models.vocos_mel import VocosMelSpectrogram


def feature_matching_loss_with_logits(real_outputs: DiscriminatorOutputs, fake_outputs: DiscriminatorOutputs) -> Tensor:
    """Σ_k Σ_j mean|fake_kj - real_kj| over all feature maps and the logits (Vocos's, HiFi-GAN's without its ×2).

    `feature_matching_loss` skips each list's last entry, so each list is passed with its logits repeated at the end:
    the logits then count once. Real features are constants; a scalar.
    """

    def logits_repeated(outputs: DiscriminatorOutputs) -> list[list[Tensor]]:
        return [[*features, features[-1]] for features in outputs]

    return feature_matching_loss(logits_repeated(real_outputs), logits_repeated(fake_outputs))


def per_discriminator(loss: Tensor, outputs: DiscriminatorOutputs) -> Tensor:
    """`loss` (a sum over sub-discriminators) divided by their number, as Vocos weights each discriminator set."""
    return loss / len(outputs)


class VocosMelLoss(nn.Module):
    """L1 between Vocos's log-mel spectrograms (centred STFT) of the estimate and the reference.

    Args:
        sample_rate: Hz.
        n_fft: FFT and window size in samples.
        hop_length: samples per frame.
        n_mels: mel bands.

    Shapes: `estimate, reference: [B, 1, T]` -> scalar.
    """

    def __init__(self, sample_rate: int = 24000, n_fft: int = 1024, hop_length: int = 256, n_mels: int = 100) -> None:
        super().__init__()
        self.log_mel = VocosMelSpectrogram(sample_rate, n_fft, hop_length, n_mels, padding="center")

    def forward(self, estimate: Tensor, reference: Tensor) -> Tensor:
        if estimate.shape != reference.shape:
            raise ValueError(
                f"estimate {tuple(estimate.shape)} and reference {tuple(reference.shape)} must have the same shape."
            )
        return F.l1_loss(self.log_mel(estimate), self.log_mel(reference))
