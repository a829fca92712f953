"""A causal codec: output sample t depends on input samples up to the last of t's frame and no further, the
state dict is a centred codec's, the latency is one hop, and the tiny codec trains with ``causal: true``."""

from __future__ import annotations

import pytest
import torch

from codecgan.cli import main
from codecgan.models import CodecGenerator
from codecgan.models.streaming_codec import NotCausalError, algorithmic_latency_seconds
from tests.conftest import EXPERIMENTS, tiny_trainer_overlay, write_overlay

TINY = dict(
    encoder_dim=8,
    encoder_strides=[2, 4, 5],
    decoder_dim=64,
    decoder_strides=[5, 4, 2],
    n_codebooks=4,
    codebook_size=256,
    codebook_dim=8,
)
HOP = 40


def tiny_codec(causal: bool = True, seed: int = 0) -> CodecGenerator:
    torch.manual_seed(seed)
    return CodecGenerator(**TINY, causal=causal).eval()


def changed_from(before: torch.Tensor, after: torch.Tensor) -> int:
    """The first index along the last axis where ``before`` and ``after`` differ (their length when none)."""
    differs = (before != after).flatten(0, -2).any(dim=0).nonzero()
    return int(differs[0]) if len(differs) else before.shape[-1]


@torch.no_grad()
@pytest.mark.parametrize("sample", [0, 39, 40, 523, 959])
def test_a_change_at_one_sample_moves_nothing_before_its_frame_and_its_frame_at_once(sample):
    codec = tiny_codec()
    audio = 0.3 * torch.randn(2, 1, 24 * HOP)
    changed = audio.clone()
    changed[..., sample] += 0.5
    frame = sample // HOP
    # Unquantized, so that every change shows: the encoder's latent frames, then the decoder's samples.
    assert changed_from(codec.encoder(audio), codec.encoder(changed)) == frame
    decoded = codec.decoder(codec.encoder(audio)), codec.decoder(codec.encoder(changed))
    assert changed_from(*decoded) == frame * HOP
    # Through the quantizer, nothing before the frame moves either.
    whole, perturbed = codec(audio), codec(changed)
    assert changed_from(whole.codes, perturbed.codes) >= frame
    assert changed_from(whole.audio, perturbed.audio) >= frame * HOP


@torch.no_grad()
def test_a_changed_latent_frame_moves_the_decoder_output_from_that_frame_on():
    codec = tiny_codec()
    latents = torch.randn(1, codec.latent_dim, 12)
    changed = latents.clone()
    changed[..., 7] += 1.0
    assert changed_from(codec.decoder(latents), codec.decoder(changed)) == 7 * HOP


@torch.no_grad()
@pytest.mark.parametrize("length", [1, 39, 40, 1001])
def test_a_causal_codec_keeps_the_input_length_and_ceil_frames(length):
    output = tiny_codec()(torch.randn(1, 1, length))
    assert output.audio.shape == (1, 1, length)
    assert output.codes.shape == (1, 4, -(-length // HOP))


def test_a_causal_codec_has_the_centred_codec_parameters_and_loads_its_weights():
    causal, centred = tiny_codec(causal=True), tiny_codec(causal=False, seed=1)
    assert {name: value.shape for name, value in causal.state_dict().items()} == {
        name: value.shape for name, value in centred.state_dict().items()
    }
    causal.load_state_dict(centred.state_dict())
    assert causal.causal and not centred.causal


def test_the_latency_is_one_hop_and_a_centred_codec_has_none():
    assert algorithmic_latency_seconds(tiny_codec(), 16000) * 1000 == pytest.approx(2.5)
    dac_44k = CodecGenerator(encoder_dim=8, decoder_dim=64, causal=True)  # strides (2, 4, 8, 8): hop 512
    assert algorithmic_latency_seconds(dac_44k, 44100) * 1000 == pytest.approx(11.61, abs=0.01)
    with pytest.raises(NotCausalError, match="model.init_args.generator.init_args.causal"):
        algorithmic_latency_seconds(tiny_codec(causal=False), 16000)


def test_every_causal_parameter_gets_a_finite_gradient():
    codec = tiny_codec().train()
    output = codec(0.3 * torch.randn(2, 1, 8 * HOP))
    (output.audio.square().mean() + output.commitment_loss + output.codebook_loss).backward()
    for name, parameter in codec.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name


@pytest.mark.slow
def test_the_tiny_codec_trains_with_causal_true(tmp_path):
    overlay = tiny_trainer_overlay(tmp_path / "run", max_steps=3, val_every=3, checkpoint_every=3)
    overlay["trainer"]["limit_val_batches"] = 0
    overlay["data"]["init_args"]["synthetic_items"] = [12, 2, 2]
    overlay["model"] = {"init_args": {"generator": {"init_args": {"causal": True}}}}
    config = write_overlay(tmp_path, "overlay.yaml", overlay)
    main(["fit", "--config", str(EXPERIMENTS / "codec_tiny.yaml"), "--config", str(config)])
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 3
    config_text = next((tmp_path / "run").rglob("config.yaml")).read_text()
    assert "causal: true" in config_text
    assert all(torch.isfinite(value).all() for value in checkpoint["state_dict"].values() if value.is_floating_point())
