"""bf16-mixed is numerically sound for the codec: the same batch and weights give the same losses as fp32.

Under CPU autocast (bf16) the convolutions run in bf16 while STFTs, mel filterbanks, the VQ lookup, the losses and
the waveform output layer stay in fp32. The tolerances are a few times what the tiny codec shows (mel and VQ
terms about 0.2-0.6 %, adversarial terms about 0.02 %); an STFT or log-mel computed in bf16 would miss them by
far (log10 of bf16 magnitudes near the 1e-5 floor is off by whole percents).
"""

from __future__ import annotations

import contextlib

import pytest
import torch
from torch.utils.data import default_collate

from codecgan.lightning_cli import build_cli
from codecgan.models import Decoder, STFTBandDiscriminator
from tests.conftest import EXPERIMENTS

# Relative tolerance per loss term, |bf16 - fp32| / |fp32|.
TOLERANCE = {"loss_d": 0.01, "loss_adv": 0.01, "loss_fm": 0.02, "loss_mel": 0.02, "loss_vq": 0.03}


@pytest.fixture(scope="module")
def codec_and_batch():
    cli = build_cli(
        [
            "--config",
            str(EXPERIMENTS / "codec_tiny.yaml"),
            "--trainer.logger",
            "false",
            "--trainer.callbacks",
            "[]",
            "--data.init_args.synthetic_items",
            "[4, 1, 1]",
            "--data.init_args.synthetic_seconds",
            "0.4",
            "--data.init_args.crop_seconds",
            "0.3",
        ],
        run=False,
    )
    datamodule = cli.datamodule
    datamodule.setup("fit")
    batch = default_collate([datamodule.datasets["train"][index] for index in range(4)])
    return cli.model, batch


def losses(module, batch, bf16: bool) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Every loss term of one batch (discriminator and generator side), and the estimate."""
    torch.manual_seed(0)  # the same quantizer-dropout draw in both precisions
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    with torch.no_grad(), autocast:
        forward = module.generator_forward(batch)
        loss_d, _ = module.discriminator_loss(batch, forward)
        terms, _ = module.generator_loss(batch, forward, adversarial=True)
    return {"loss_d": loss_d, **terms}, forward["estimate"]


def test_bf16_mixed_losses_match_fp32(codec_and_batch):
    module, batch = codec_and_batch
    reference, _ = losses(module, batch, bf16=False)
    mixed, estimate = losses(module, batch, bf16=True)
    assert set(mixed) == set(TOLERANCE)
    for name, tolerance in TOLERANCE.items():
        assert mixed[name].dtype == torch.float32, f"{name} is {mixed[name].dtype} under bf16 autocast"
        error = abs(float(mixed[name]) - float(reference[name])) / abs(float(reference[name]))
        assert error < tolerance, (
            f"{name}: bf16 {float(mixed[name]):.5f} vs fp32 {float(reference[name]):.5f} ({error:.2%})"
        )
    assert estimate.dtype == torch.float32  # docs/interfaces.md: waveforms are float32


def test_decoder_output_layer_is_fp32_under_autocast():
    decoder = Decoder(latent_dim=16, dim=32, strides=(2, 2))
    latents = torch.randn(2, 16, 10)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        audio = decoder(latents)
    assert audio.dtype == torch.float32 and audio.shape == (2, 1, 40)


def test_discriminator_stft_is_fp32_under_autocast():
    discriminator = STFTBandDiscriminator(256, channels=4)
    audio = torch.randn(2, 1, 2048)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        spectrum = discriminator.complex_spectrogram(audio.bfloat16())
    assert spectrum.dtype == torch.float32
    torch.testing.assert_close(spectrum, discriminator.complex_spectrogram(audio.bfloat16().float()))
