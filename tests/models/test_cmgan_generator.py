"""Invariants of the CMGAN-style enhancer: exact output length, level equivariance, parameter counts."""

import pytest
import torch

from codecgan.models import CMGANGenerator, compressed_spectrum, decompressed_audio

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


def test_gradients_reach_encoder_conformer_and_both_decoders():
    torch.manual_seed(0)
    generator = CMGANGenerator(**TINY)
    output = generator(torch.randn(2, 1, 800) * 0.1)
    (output.audio.square().mean() + output.magnitude.mean()).backward()
    for name in ["encoder.0.weight", "conformers.0.time.attention.qkv.weight", "conformers.0.frequency.norm.weight",
                 "mask_decoder.mask.slope", "complex_decoder.3.weight"]:
        grad = generator.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_cmgan_size_parameter_count():
    # CMGAN's TSCNet has 1.83 M; it adds 16,400 relative-position embeddings to each of its 8 attentions.
    assert sum(p.numel() for p in CMGANGenerator(channels=64, num_blocks=4).parameters()) == 1_703_834


def test_bad_sizes_are_rejected():
    with pytest.raises(ValueError, match="divisible by attention heads"):
        CMGANGenerator(channels=6, attention_heads=4)
    with pytest.raises(ValueError, match="compress_exponent"):
        CMGANGenerator(compress_exponent=0.0)
