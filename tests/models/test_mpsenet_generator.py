"""MPSENetGenerator: MP-SENet's parameter count, shapes, bounded mask, wrapped phase, exact length."""

from __future__ import annotations

import math

import pytest
import torch

from codecgan.models import MagnitudePhaseOutput, MPSENetGenerator

TINY = dict(channels=4, num_blocks=1, attention_heads=2, dense_depth=1)


def parameter_count(module: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


def test_default_size_has_the_parameter_count_of_mpsenets_mpnet():
    # Counted by instantiating yxlu-0102/MP-SENet@89932cf's MPNet with its config.json: 2,263,372 parameters
    # (dense encoder 259,712; 4 two-stage transformers 1,459,712; magnitude decoder 272,010; phase decoder 271,938).
    generator = MPSENetGenerator()
    assert parameter_count(generator) == 2_263_372
    assert parameter_count(generator.encoder) == 259_712
    assert parameter_count(generator.transformers) == 1_459_712
    assert parameter_count(generator.magnitude_decoder) == 272_010
    assert parameter_count(generator.phase_decoder) == 271_938


@pytest.mark.parametrize("samples", [4000, 4037])  # a multiple of the hop, and not
def test_output_has_the_input_length_and_consistent_spectra(samples):
    torch.manual_seed(0)
    generator = MPSENetGenerator(**TINY)
    noisy = 0.1 * torch.randn(2, 1, samples)
    output = generator(noisy)
    assert isinstance(output, MagnitudePhaseOutput)
    frames = 1 + samples // 100
    assert output.audio.shape == (2, 1, samples)
    for spectrum in (output.real, output.imag, output.magnitude, output.phase):
        assert spectrum.shape == (2, 1, 201, frames)
    torch.testing.assert_close(output.real, output.magnitude * torch.cos(output.phase))
    torch.testing.assert_close(output.imag, output.magnitude * torch.sin(output.phase))
    assert output.phase.abs().max() <= math.pi
    torch.testing.assert_close(output.normalization, noisy.square().mean(-1, keepdim=True).rsqrt())


def test_the_mask_is_bounded_by_mask_max_on_the_noisy_magnitude():
    torch.manual_seed(0)
    generator = MPSENetGenerator(**TINY, mask_max=2.0)
    with torch.no_grad():
        generator.magnitude_decoder.activation.slope.fill_(50.0)  # saturate the sigmoid
    noisy = 0.1 * torch.randn(1, 1, 4000)
    spectrum = generator.compressed_spectrum(noisy * generator(noisy).normalization)
    ratio = generator(noisy).magnitude / spectrum.magnitude
    assert ratio.min() >= 0 and ratio.max() <= 2.0 + 1e-5 and ratio.max() > 1.9


def test_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    generator = MPSENetGenerator(**TINY)
    output = generator(0.1 * torch.randn(1, 1, 2000))
    (output.audio.square().mean() + output.phase.mean()).backward()
    assert all(parameter.grad is not None for parameter in generator.parameters())


def test_bad_sizes_fail_naming_the_values():
    with pytest.raises(ValueError, match="attention_heads=3"):
        MPSENetGenerator(channels=8, attention_heads=3)
    with pytest.raises(ValueError, match="compress_exponent"):
        MPSENetGenerator(compress_exponent=0.0)
