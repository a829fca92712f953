"""Shapes, parameter counts and gradients of the discriminators."""

import pytest
import torch

from codecgan.losses import discriminator_loss, generator_adversarial_loss
from codecgan.models import (
    DACDiscriminator,
    DiscriminatorSet,
    MultiPeriodDiscriminator,
    MultiResolutionSTFTDiscriminator,
    MultiScaleDiscriminator,
    remove_dc_and_normalize_peak,
)
from codecgan.models.multiscale_discriminator import ScaleDiscriminator


def count(module: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


@pytest.fixture(scope="module")
def dac_size() -> DACDiscriminator:
    # The meta device allocates nothing: counting 42.5 M parameters costs no memory.
    with torch.device("meta"):
        return DACDiscriminator()


def test_dac_default_parameter_count(dac_size):
    assert count(dac_size) == 42_519_760
    assert count(dac_size.mpd) == 41_105_770
    assert count(dac_size.mrd) == 1_413_990
    assert len(dac_size.mpd.discriminators) == 5 and len(dac_size.mrd.discriminators) == 3


def test_dac_default_band_edges(dac_size):
    edges = [d.band_bins for d in dac_size.mrd.discriminators]
    assert edges[0] == [(0, 102), (102, 256), (256, 512), (512, 768), (768, 1025)]
    assert edges[2] == [(0, 25), (25, 64), (64, 128), (128, 192), (192, 257)]


def test_melgan_scale_discriminator_default_count_and_groups():
    with torch.device("meta"):
        scale = ScaleDiscriminator()
    assert count(scale) == 5_641_362
    assert [conv.groups for conv in scale.convs] == [1, 4, 16, 64, 256, 1]
    assert [conv.stride[0] for conv in scale.convs] == [1, 4, 4, 4, 4, 1]


def test_tiny_dac_discriminator_shapes_match_dac():
    # 16,758 samples (0.38 s at 44.1 kHz): DAC's MRD w=2048 gives 33 frames and 130 band bins;
    # the MPD pads a whole period even though 16,758 is even, so p=2 sees 8,380 rows.
    discriminator = DACDiscriminator(mpd_channels=(2, 2, 2, 2, 2), mrd_channels=2)
    assert 2_000 < count(discriminator) < 10_000
    outputs = discriminator(torch.randn(2, 1, 16_758))
    assert [len(features) for features in outputs] == [6] * 5 + [26] * 3
    assert outputs[0][0].shape == (2, 2, 2794, 2)
    assert outputs[0][-1].shape == (2, 1, 104, 2)
    assert outputs[4][-1].shape == (2, 1, 19, 11)
    assert outputs[5][-1].shape == (2, 1, 33, 130)
    assert outputs[7][-1].shape == (2, 1, 131, 34)


def test_mpd_pads_a_whole_period_when_divisible():
    mpd = MultiPeriodDiscriminator(periods=(3,), channels=(2, 2))
    assert mpd(torch.randn(1, 1, 30))[0][0].shape == (1, 2, 4, 3)  # 33 samples -> 11 rows -> 4


def test_stft_runs_in_fp32_under_bf16_autocast():
    mrd = MultiResolutionSTFTDiscriminator(window_lengths=(256,), channels=2)
    audio = torch.randn(1, 1, 1000)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        spectrum = mrd.discriminators[0].complex_spectrogram(audio)
        logits = mrd(audio)[0][-1]
    assert spectrum.dtype == torch.float32 and spectrum.shape == (1, 2, 16, 129)
    assert torch.isfinite(logits).all()


def test_preprocess_removes_dc_and_sets_peak():
    audio = torch.tensor([[[1.0, 3.0, 2.0, 6.0]]])
    normalized = remove_dc_and_normalize_peak(audio)
    torch.testing.assert_close(normalized, torch.tensor([[[-0.4, 0.0, -0.2, 0.6]]]) * 0.8 / 0.6)
    assert normalized.mean().abs() < 1e-6


def test_real_and_fake_both_give_gradients():
    torch.manual_seed(0)
    discriminator = DACDiscriminator(periods=(2, 3), window_lengths=(256, 128), mpd_channels=(4, 4), mrd_channels=2)
    real = torch.randn(2, 1, 1024) * 0.3
    fake = (torch.randn(2, 1, 1024) * 0.3).requires_grad_()
    loss_d = discriminator_loss(discriminator(real), discriminator(fake.detach()), "least_squares")
    loss_d.backward()
    grads = [p.grad for p in discriminator.parameters()]
    assert all(grad is not None and torch.isfinite(grad).all() for grad in grads)
    assert sum(grad.abs().sum() for grad in grads) > 0
    generator_adversarial_loss(discriminator(fake), "least_squares").backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0


def test_multiscale_downsamples_between_scales_and_validates_groups():
    msd = MultiScaleDiscriminator(scales=3, groups=(2, 4), channels=(4, 8, 16))
    outputs = msd(torch.randn(2, 1, 1024))
    assert [len(features) for features in outputs] == [5, 5, 5]
    assert [features[-1].shape[-1] for features in outputs] == [64, 32, 16]
    assert [conv.groups for conv in msd.discriminators[0].convs] == [1, 2, 4, 1]
    with pytest.raises(ValueError, match="groups=4 must divide"):
        MultiScaleDiscriminator(groups=(2, 4), channels=(4, 8, 18))


def test_discriminator_set_concatenates_in_order():
    mpd = MultiPeriodDiscriminator(periods=(2, 3), channels=(2, 2))
    msd = MultiScaleDiscriminator(scales=2, groups=(2,), channels=(2, 4))
    audio = torch.randn(1, 1, 512)
    outputs = DiscriminatorSet([mpd, msd])(audio)
    expected = mpd(audio) + msd(audio)
    assert len(outputs) == 4
    for got, want in zip(outputs, expected):
        torch.testing.assert_close(got[-1], want[-1])
