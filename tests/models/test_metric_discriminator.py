"""The metric discriminator predicts a normalized PESQ in [0, 1] from two magnitude spectra."""

import pytest
import torch

from codecgan.models import MetricDiscriminator


@pytest.fixture(scope="module")
def discriminator() -> MetricDiscriminator:
    torch.manual_seed(0)
    return MetricDiscriminator(channels=4)


@pytest.mark.parametrize("scale", [0.0, 1.0, 1e4])
def test_output_is_one_value_per_clip_in_the_unit_interval(discriminator, scale):
    clean = torch.rand(3, 1, 201, 40) * scale
    prediction = discriminator(clean, torch.rand_like(clean) * scale)
    assert prediction.shape == (3,)
    assert ((prediction >= 0) & (prediction <= 1)).all()


def test_channel_dimension_is_optional(discriminator):
    discriminator.eval()
    clean, estimate = torch.rand(2, 201, 33), torch.rand(2, 201, 33)
    assert torch.equal(discriminator(clean, estimate), discriminator(clean[:, None], estimate[:, None]))
    discriminator.train()


def test_mismatched_shapes_are_rejected(discriminator):
    with pytest.raises(ValueError, match="same shape"):
        discriminator(torch.rand(1, 201, 40), torch.rand(1, 201, 41))


def test_cmgan_size_parameter_count():
    assert sum(p.numel() for p in MetricDiscriminator(channels=16).parameters()) == 181_650  # CMGAN: ~0.18 M
