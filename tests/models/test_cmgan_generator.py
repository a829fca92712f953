"""Invariants of the CMGAN enhancer: exact output length, level equivariance, CMGAN's parameter count and
mask activation (MP-SENet's as the option)."""

import pytest
import torch
from torch import nn

from codecgan.models import CMGANGenerator, LearnableSigmoid, compressed_spectrum, decompressed_audio

TINY = dict(channels=4, num_blocks=1, attention_heads=2, dense_depth=1, dropout=0.0)


@pytest.fixture(scope="module")
def generator() -> CMGANGenerator:
    torch.manual_seed(0)
    return CMGANGenerator(**TINY).eval()


@pytest.mark.parametrize("length", [201, 1234, 4001, 16_050])
def test_estimate_has_the_input_length_and_spectra_have_frame_shape(generator, length):
    assert length % generator.hop_length != 0
    output = generator(torch.randn(2, 1, length) * 0.1)
    frames = 1 + length // 100
    assert output.audio.shape == (2, 1, length)
    for spectrum in (output.real, output.imag, output.magnitude):
        assert spectrum.shape == (2, 1, 201, frames)
    assert output.normalization.shape == (2, 1, 1)
    assert torch.isfinite(output.audio).all()


def test_too_short_input_is_rejected_with_its_length(generator):
    with pytest.raises(ValueError, match="200 samples"):
        generator(torch.zeros(1, 1, 200))


def test_compression_round_trip_is_the_identity_for_any_length():
    audio = torch.randn(3, 1, 3333) * 0.2
    spectrum = compressed_spectrum(audio)
    assert torch.allclose(spectrum.magnitude, (spectrum.real**2 + spectrum.imag**2).sqrt(), atol=1e-5)
    assert torch.allclose(decompressed_audio(spectrum.real, spectrum.imag, 3333), audio, atol=1e-5)


def test_output_follows_the_input_level_because_the_input_is_normalized(generator):
    noisy = torch.randn(2, 1, 1600) * 0.05
    quiet, loud = generator(noisy), generator(noisy * 20)
    assert torch.allclose(loud.audio, 20 * quiet.audio, rtol=1e-3, atol=1e-6)
    assert torch.allclose(loud.magnitude, quiet.magnitude, rtol=1e-3, atol=1e-5)
    assert torch.allclose(quiet.normalization * noisy.square().mean(-1, keepdim=True).sqrt(), torch.ones(2, 1, 1))


def test_silent_input_gives_finite_silence(generator):
    output = generator(torch.zeros(1, 1, 800))
    assert torch.isfinite(output.audio).all() and output.audio.abs().max() < 1e-3


def test_bf16_autocast_keeps_audio_and_spectra_in_fp32(generator):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = generator(torch.randn(1, 1, 1000) * 0.1)
    assert output.audio.dtype == output.real.dtype == output.magnitude.dtype == torch.float32


@pytest.mark.parametrize("mask_activation", ["prelu", "learnable_sigmoid"])
def test_gradients_reach_encoder_conformer_and_both_decoders(mask_activation):
    torch.manual_seed(0)
    generator = CMGANGenerator(**TINY, mask_activation=mask_activation)
    output = generator(torch.randn(2, 1, 800) * 0.1)
    (output.audio.square().mean() + output.magnitude.mean()).backward()
    mask_parameter = "weight" if mask_activation == "prelu" else "slope"
    for name in [
        "encoder.0.weight",
        "conformers.0.time.attention.query.weight",
        "conformers.0.time.attention.relative_position.weight",
        "conformers.0.frequency.convolution.layers.3.weight",
        "conformers.0.frequency.norm.weight",
        f"mask_decoder.activation.{mask_parameter}",
        "complex_decoder.3.weight",
    ]:
        grad = generator.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("mask_activation", ["prelu", "learnable_sigmoid"])
def test_cmgan_size_parameter_count_is_cmgans(mask_activation):
    # CMGAN's TSCNet(num_channel=64, num_features=201), counted layer by layer from its source: encoder 259,776;
    # 4 two-stage blocks of 2 conformers x 128,912 (each attention holds a 1025 x 16 relative-position table,
    # 16,400); mask decoder 271,823; complex decoder 271,938. MP-SENet's sigmoid has as many slopes as the PReLU.
    generator = CMGANGenerator(mask_activation=mask_activation)
    assert parameter_count(generator) == 1_834_833
    assert parameter_count(generator.encoder) == 259_776
    assert parameter_count(generator.conformers[0].time) == 128_912
    assert parameter_count(generator.mask_decoder) == 271_823
    assert parameter_count(generator.complex_decoder) == 271_938


def test_the_mask_ends_in_cmgans_per_bin_prelu_by_default():
    decoder = CMGANGenerator(**TINY).mask_decoder
    assert isinstance(decoder.activation, nn.PReLU)
    assert decoder.activation.weight.shape == (201,)
    assert torch.equal(decoder.activation.weight, torch.full((201,), -0.25))
    assert not any(isinstance(module, (LearnableSigmoid, nn.Sigmoid)) for module in decoder.modules())
    # Unbounded: a large pre-activation passes through; a negative one is flipped to -0.25 x.
    assert torch.equal(decoder.activation(torch.tensor([[5.0] * 201])), torch.full((1, 201), 5.0))
    assert torch.equal(decoder.activation(torch.tensor([[-4.0] * 201])), torch.full((1, 201), 1.0))


def test_mpsenet_learnable_sigmoid_mask_is_an_option_bounded_by_mask_max():
    torch.manual_seed(0)
    generator = CMGANGenerator(**TINY, mask_activation="learnable_sigmoid").eval()
    activation = generator.mask_decoder.activation
    assert isinstance(activation, LearnableSigmoid) and activation.beta == 2.0 and activation.slope.shape == (201,)
    assert not any(isinstance(module, nn.PReLU) and module.num_parameters == 201 for module in generator.modules())
    mask = generator.mask_decoder(generator.conformers(generator.encoder(torch.randn(2, 3, 9, 201))))
    assert mask.shape == (2, 1, 201, 9) and ((mask > 0) & (mask < 2)).all()


def test_bad_sizes_are_rejected():
    with pytest.raises(ValueError, match="divisible by attention heads"):
        CMGANGenerator(channels=6, attention_heads=4)
    with pytest.raises(ValueError, match="compress_exponent"):
        CMGANGenerator(compress_exponent=0.0)
    with pytest.raises(ValueError, match="'prelu' \\(CMGAN\\) or 'learnable_sigmoid' \\(MP-SENet\\), got 'sigmoid'"):
        CMGANGenerator(mask_activation="sigmoid")
    with pytest.raises(ValueError, match="conv_dropout"):
        CMGANGenerator(conv_dropout=1.0)


def test_dropout_defaults_are_cmgans_and_the_shorthand_sets_all_three():
    block = CMGANGenerator(**{**TINY, "dropout": None}).conformers[0].time
    rates = {name: module.p for name, module in block.named_modules() if isinstance(module, nn.Dropout)}
    assert rates == {
        "feed_forward_in.3": 0.2,
        "feed_forward_in.5": 0.2,
        "attention.dropout": 0.2,
        "convolution.dropout": 0.0,
        "feed_forward_out.3": 0.2,
        "feed_forward_out.5": 0.2,
    }
    off = CMGANGenerator(**TINY)  # dropout=0.0
    assert all(module.p == 0.0 for module in off.modules() if isinstance(module, nn.Dropout))
