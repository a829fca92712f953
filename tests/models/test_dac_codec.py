"""Invariants of the codec generator and its residual vector quantizer."""

import pytest
import torch

from codecgan.models import CodecGenerator, ResidualVectorQuantizer, VectorQuantizer

TINY = dict(
    encoder_dim=4,
    encoder_strides=(2, 4),
    decoder_dim=16,
    decoder_strides=(4, 2),
    n_codebooks=3,
    codebook_size=16,
    codebook_dim=4,
)


@pytest.fixture
def codec() -> CodecGenerator:
    torch.manual_seed(0)
    return CodecGenerator(**TINY)


@pytest.mark.parametrize("length", [1, 799, 800, 1001])
def test_output_has_input_length_and_codes_have_frame_shape(codec, length):
    output = codec(torch.randn(2, 1, length) * 0.1)
    frames = -(-length // codec.hop_length)
    assert codec.hop_length == 8
    assert output.audio.shape == (2, 1, length)
    assert output.codes.shape == (2, 3, frames)
    assert output.codes.dtype == torch.int64
    assert 0 <= int(output.codes.min()) and int(output.codes.max()) < codec.codebook_size
    assert output.commitment_loss.shape == () and output.codebook_loss.shape == ()
    assert output.audio.abs().max() <= 1.0


def test_odd_strides_keep_exact_length():
    codec = CodecGenerator(4, (3, 5), None, 16, (5, 3), 2, 8, 4)
    assert codec.hop_length == 15
    assert codec(torch.randn(1, 1, 301)).audio.shape == (1, 1, 301)
    assert codec.decode(torch.zeros(1, 2, 7, dtype=torch.long)).shape == (1, 1, 105)


def test_mismatched_hops_and_indivisible_decoder_dim_are_rejected():
    with pytest.raises(ValueError, match="same product"):
        CodecGenerator(4, (2, 4), None, 16, (2, 2))
    with pytest.raises(ValueError, match="divisible by 2\\*\\*2"):
        CodecGenerator(4, (2, 4), None, 18, (4, 2))


def test_gradients_reach_encoder_quantizer_and_decoder(codec):
    output = codec(torch.randn(2, 1, 160) * 0.1)
    (output.audio.pow(2).mean() + output.commitment_loss + output.codebook_loss).backward()
    parametrized = "parametrizations.weight.original1"
    for name in [
        f"encoder.0.{parametrized}",
        f"quantizer.quantizers.0.in_proj.{parametrized}",
        "quantizer.quantizers.2.codebook.weight",
        f"decoder.0.{parametrized}",
        f"decoder.{len(codec.decoder) - 2}.{parametrized}",
    ]:
        grad = codec.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_decoding_the_codes_reproduces_the_reconstruction(codec):
    codec.eval()
    audio = torch.randn(2, 1, 96) * 0.1
    output = codec(audio)
    torch.testing.assert_close(codec.decode(output.codes, 96), output.audio)


@pytest.mark.parametrize("n_codebooks", [None, 1, 2])
def test_decode_of_encode_equals_forward_at_every_bitrate(codec, n_codebooks):
    codec.eval()
    audio = torch.randn(2, 1, 101) * 0.1  # not a multiple of the hop: encode pads as forward does
    output = codec(audio, n_codebooks)
    codes = codec.encode(audio, n_codebooks)
    assert torch.equal(codes, output.codes) and codes.shape == (2, n_codebooks or 3, 13)
    torch.testing.assert_close(codec.decode(codes, 101), output.audio)


def test_straight_through_gradient_equals_the_unquantized_projection():
    torch.manual_seed(0)
    quantizer = VectorQuantizer(input_dim=6, codebook_size=8, codebook_dim=3)
    z = torch.randn(2, 6, 5, requires_grad=True)
    weights = torch.randn(2, 6, 5)
    output = quantizer(z)
    (grad_quantized,) = torch.autograd.grad((output.z_q * weights).sum(), z)
    unquantized = quantizer.out_proj(quantizer.in_proj(z))
    (grad_unquantized,) = torch.autograd.grad((unquantized * weights).sum(), z)
    torch.testing.assert_close(grad_quantized, grad_unquantized)
    # The forward value is the projected codebook row, not the projected encoding.
    torch.testing.assert_close(output.z_q, quantizer.decode_codes(output.codes))
    assert not torch.allclose(output.z_q, unquantized)


def test_lookup_picks_the_highest_cosine_similarity():
    quantizer = VectorQuantizer(input_dim=2, codebook_size=3, codebook_dim=2)
    with torch.no_grad():
        quantizer.codebook.weight.copy_(torch.tensor([[5.0, 0.0], [0.0, 0.1], [-1.0, -1.0]]))
    # The tiny second encoding points along row 0: cosine picks it, raw distance would pick row 1.
    z_e = torch.tensor([[[0.1, 0.01, -2.0], [0.2, 0.001, -1.9]]])
    assert quantizer.nearest_codes(z_e).tolist() == [[1, 0, 2]]


def test_quantizer_dropout_masks_outputs_and_losses_per_item():
    torch.manual_seed(0)
    rvq = ResidualVectorQuantizer(input_dim=6, n_codebooks=4, codebook_size=8, codebook_dim=3)
    rvq.quantizer_dropout = 0.75
    latents = torch.randn(64, 6, 5)
    output = rvq(latents)
    active = output.active_quantizers
    assert active[48:].eq(4).all()
    assert set(active[:48].tolist()) == {1, 2, 3, 4}

    residual, steps = latents, []
    for quantizer in rvq.quantizers:
        steps.append(quantizer(residual))
        residual = residual - steps[-1].z_q
    masks = [(index < active).float() for index in range(4)]
    expected_z_q = sum(step.z_q * mask[:, None, None] for step, mask in zip(steps, masks))
    torch.testing.assert_close(output.z_q, expected_z_q)
    expected_commitment = sum((s.commitment_loss * m).mean() for s, m in zip(steps, masks))
    expected_codebook = sum((s.codebook_loss * m).mean() for s, m in zip(steps, masks))
    torch.testing.assert_close(output.commitment_loss, expected_commitment)
    torch.testing.assert_close(output.codebook_loss, expected_codebook)
    assert output.codes.shape == (64, 4, 5)

    rvq.eval()
    assert rvq(latents).active_quantizers.eq(4).all()
    torch.testing.assert_close(rvq(latents).z_q, sum(step.z_q for step in steps))


def test_fewer_quantizers_and_invalid_dropout():
    rvq = ResidualVectorQuantizer(input_dim=6, n_codebooks=4, codebook_size=8, codebook_dim=3)
    assert rvq(torch.randn(2, 6, 5), n_quantizers=2).codes.shape == (2, 2, 5)
    with pytest.raises(ValueError, match="quantizer_dropout"):
        ResidualVectorQuantizer(quantizer_dropout=1.5)


def test_quantizer_runs_in_fp32_under_bf16_autocast(codec):
    audio = torch.randn(2, 1, 64) * 0.1
    reference = codec(audio)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = codec(audio)
    assert output.commitment_loss.dtype == torch.float32
    assert output.codes.shape == reference.codes.shape
    assert torch.isfinite(output.audio).all()
