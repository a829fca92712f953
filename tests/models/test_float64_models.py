"""`at_least_float32`: the steps that never compute in half precision lift bf16 and fp16 to fp32 and leave float64
as it is, so that a `.double()` codec computes in float64 end to end (the float64 comparisons with DAC need it)."""

import pytest
import torch

from codecgan.losses import MultiScaleMelLoss, discriminator_loss, feature_matching_loss, generator_adversarial_loss
from codecgan.models import CodecGenerator, DACDiscriminator
from codecgan.models.precision import at_least_float32


@pytest.mark.parametrize(
    ("dtype", "expected"),
    [
        (torch.bfloat16, torch.float32),
        (torch.float16, torch.float32),
        (torch.bool, torch.float32),
        (torch.float32, torch.float32),
        (torch.float64, torch.float64),
    ],
)
def test_half_precision_rises_to_float32_and_float64_stays(dtype, expected):
    assert at_least_float32(torch.zeros(3, dtype=dtype)).dtype == expected


def test_a_float64_codec_computes_in_float64_end_to_end():
    torch.manual_seed(0)
    generator = CodecGenerator(
        encoder_dim=4, encoder_strides=(2, 4), decoder_dim=16, decoder_strides=(4, 2), n_codebooks=3, codebook_size=16
    ).double()
    discriminator = DACDiscriminator(periods=(2, 3), window_lengths=(256, 128), mpd_channels=(4, 4), mrd_channels=2)
    discriminator.double()
    mel_loss = MultiScaleMelLoss(16000, (64, 128), (8, 16)).double()
    audio = 0.3 * torch.randn(2, 1, 800, dtype=torch.float64)

    output = generator(audio)
    real, fake = discriminator(audio), discriminator(output.audio)
    maps = [tensor for features in real + fake for tensor in features]
    losses = [
        output.commitment_loss,
        output.codebook_loss,
        mel_loss(output.audio, audio),
        discriminator_loss(real, fake),
        generator_adversarial_loss(fake),
        feature_matching_loss(real, fake),
    ]
    assert {tensor.dtype for tensor in [output.audio, *maps, *losses]} == {torch.float64}
    sum(losses).backward()
    parameters = [*generator.parameters(), *discriminator.parameters()]
    assert {parameter.grad.dtype for parameter in parameters if parameter.grad is not None} == {torch.float64}
