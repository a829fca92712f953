"""HiFi-GAN's and BigVGAN-v2's recipes in `VocoderGAN`: the module's losses on the BigVGAN fixture's audio, generator
output and filled discriminators (tests/fixtures/bigvgan) equal the reference's own loss values and the recipe
written out by hand; the HiFi-GAN front-end's filters are torchaudio's Slaney filters; inconsistent hops, bands and
rates are `ConfigError`s naming the keys; a tiny HiFi-GAN fit lowers its validation mel distance."""

from __future__ import annotations

import math
import re
from pathlib import Path

import lightning as L
import pytest
import torch
import torchaudio
import yaml

from codecgan.config_error import ConfigError
from codecgan.data import CodecDataModule
from codecgan.diagnosis.history import MetricHistory
from codecgan.losses.mel import MultiScaleMelLoss
from codecgan.models import (
    DiscriminatorSet,
    HiFiGANGenerator,
    HiFiGANMultiPeriodDiscriminator,
    MultiScaleSubbandCQTDiscriminator,
)
from codecgan.models.hifigan_mel import HiFiGANLogMel
from codecgan.models.slaney_mel import slaney_mel_filters
from codecgan.vocoder_module import VocoderGAN
from codecgan.vocoder_settings import check_whole_hops
from tests.conftest import EXPERIMENTS, run_codecgan, tiny_trainer_overlay
from tests.models.test_bigvgan_reference import RECORD, discriminators, generator, load_filled

TOLERANCE = {"rtol": 1e-5, "atol": 1e-6}


def cqt_discriminator() -> MultiScaleSubbandCQTDiscriminator:
    config = RECORD["cqtd_config"]
    model = MultiScaleSubbandCQTDiscriminator(
        config["sampling_rate"],
        config["cqtd_hop_lengths"],
        config["cqtd_n_octaves"],
        config["cqtd_bins_per_octaves"],
        config["cqtd_filters"],
        config["cqtd_max_filters"],
        config["cqtd_filters_scale"],
        config["cqtd_dilations"],
    )
    return load_filled(model, RECORD["cqtd"])


def fixture_module(recipe: str, partner: str) -> VocoderGAN:
    """VocoderGAN on the fixture's parts: its BigVGAN generator (hop 16, 16 mels), HiFi-GAN's front-end at the
    fixture's mel settings, the filled MPD and `partner` (MRD or CQT-D)."""
    mpd = load_filled(discriminators()["mpd"], RECORD["mpd"])
    second = cqt_discriminator() if partner == "cqtd" else load_filled(discriminators()[partner], RECORD[partner])
    config = RECORD["mel_config"]
    front_end = HiFiGANLogMel(**config, f_max=None)
    return VocoderGAN(
        generator("amp1_snakebeta"), DiscriminatorSet([mpd, second]), front_end, config["sample_rate"], recipe
    ).eval()


def recipe_losses(module: VocoderGAN) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict]:
    real, fake = RECORD["audio"], RECORD["generators"]["amp1_snakebeta"]["output"]
    batch = {"audio": real, "length": torch.full((2,), real.shape[-1])}
    forward = {"estimate": fake, "reference": real, "input": real, "length": batch["length"]}
    with torch.no_grad():
        loss_d, extra = module.discriminator_loss(batch, forward)
        terms, _ = module.generator_loss(batch, forward, adversarial=True)
    return loss_d, terms, extra


def written_out(module: VocoderGAN, logits_kept: list[bool]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Least squares and feature matching x 2, summed over every sub-discriminator, as HiFi-GAN's `train.py`."""
    real_audio, fake_audio = RECORD["audio"], RECORD["generators"]["amp1_snakebeta"]["output"]
    loss_d = loss_adv = loss_fm = torch.zeros(())
    with torch.no_grad():
        for member, with_logits in zip(module.discriminator.discriminators, logits_kept):
            for real, fake in zip(member(real_audio), member(fake_audio)):
                loss_d = loss_d + torch.mean((1 - real[-1]) ** 2) + torch.mean(fake[-1] ** 2)
                loss_adv = loss_adv + torch.mean((1 - fake[-1]) ** 2)
                maps = len(real) if with_logits else len(real) - 1
                loss_fm = loss_fm + 2 * sum(torch.mean(torch.abs(r - f)) for r, f in zip(real[:maps], fake[:maps]))
    return loss_d, loss_adv, loss_fm


@pytest.fixture(scope="module")
def hifigan_module() -> VocoderGAN:
    return fixture_module("hifigan", "mrd")


def test_hifigan_recipe_losses_are_the_references(hifigan_module: VocoderGAN) -> None:
    loss_d, terms, extra = recipe_losses(hifigan_module)
    torch.testing.assert_close(loss_d, RECORD["mpd"]["discriminator_loss"] + RECORD["mrd"]["discriminator_loss"])
    reference_adv = RECORD["mpd"]["generator_loss"] + RECORD["mrd"]["generator_loss"]
    torch.testing.assert_close(terms["loss_adv"], reference_adv, **TOLERANCE)
    torch.testing.assert_close(terms["loss_fm"], RECORD["mpd"]["feature_loss"] + RECORD["mrd"]["feature_loss"])
    # mel L1 x 45 of BigVGAN's meldataset.mel_spectrogram (HiFi-GAN's) with fmax None, as written by the reference.
    torch.testing.assert_close(terms["loss_mel"], 45 * RECORD["mel_l1_loss"], **TOLERANCE)
    assert extra["d_loss_chance"] == pytest.approx(0.5 * (3 + 3))  # least squares' 0.5 per sub-discriminator


def test_hifigan_recipe_losses_are_the_written_out_recipe(hifigan_module: VocoderGAN) -> None:
    loss_d, terms, _ = recipe_losses(hifigan_module)
    by_hand = written_out(hifigan_module, [True, True])
    torch.testing.assert_close(loss_d, by_hand[0], **TOLERANCE)
    torch.testing.assert_close(terms["loss_adv"], by_hand[1], **TOLERANCE)
    torch.testing.assert_close(terms["loss_fm"], by_hand[2], **TOLERANCE)
    log_mel = hifigan_module.mel_spectrogram  # the fixture's settings with f_max None, as HiFi-GAN's loss mel
    real, fake = RECORD["audio"], RECORD["generators"]["amp1_snakebeta"]["output"]
    mel_l1 = torch.mean(torch.abs(log_mel(real) - log_mel(fake)))
    torch.testing.assert_close(terms["loss_mel"], 45 * mel_l1, **TOLERANCE)


@pytest.fixture(scope="module")
def bigvgan_module() -> VocoderGAN:
    return fixture_module("bigvgan", "cqtd")


def test_bigvgan_recipe_discriminator_loss_is_the_references(bigvgan_module: VocoderGAN) -> None:
    real, fake = RECORD["audio"], RECORD["generators"]["amp1_snakebeta"]["output"]
    forward = {"estimate": fake, "reference": real}
    with torch.no_grad():
        loss_d, _ = bigvgan_module.discriminator_loss({"audio": real}, forward)
    torch.testing.assert_close(loss_d, RECORD["mpd"]["discriminator_loss"] + RECORD["cqtd"]["discriminator_loss"])


def test_bigvgan_recipe_generator_losses_are_the_references(bigvgan_module: VocoderGAN) -> None:
    real, fake = RECORD["audio"], RECORD["generators"]["amp1_snakebeta"]["output"]
    forward = {"estimate": fake, "reference": real}
    with torch.no_grad():
        terms, _ = bigvgan_module.generator_loss({"audio": real}, forward, adversarial=True)
    reference_adv = RECORD["mpd"]["generator_loss"] + RECORD["cqtd"]["generator_loss"]
    torch.testing.assert_close(terms["loss_adv"], reference_adv, **TOLERANCE)
    torch.testing.assert_close(terms["loss_fm"], RECORD["mpd"]["feature_loss"] + RECORD["cqtd"]["feature_loss"])
    torch.testing.assert_close(terms["loss_mel"], 15 * RECORD["multiscale_mel_loss"], **TOLERANCE)
    assert isinstance(bigvgan_module.mel_loss, MultiScaleMelLoss)


def test_bigvgan_recipe_leaves_the_cqt_logits_out_of_feature_matching(bigvgan_module: VocoderGAN) -> None:
    """The written-out recipe without the CQT-D's logit maps gives BigVGAN's own losses."""
    assert bigvgan_module.feature_maps_with_logits == [True, False]
    loss_d, loss_adv, loss_fm = written_out(bigvgan_module, [True, False])
    torch.testing.assert_close(loss_d, RECORD["mpd"]["discriminator_loss"] + RECORD["cqtd"]["discriminator_loss"])
    torch.testing.assert_close(loss_adv, RECORD["mpd"]["generator_loss"] + RECORD["cqtd"]["generator_loss"])
    torch.testing.assert_close(loss_fm, RECORD["mpd"]["feature_loss"] + RECORD["cqtd"]["feature_loss"])


def test_bigvgan_validates_with_the_single_scale_log_mel_distance(bigvgan_module: VocoderGAN) -> None:
    module = bigvgan_module
    audio = RECORD["audio"]
    batch = {"audio": audio, "length": torch.full((2,), audio.shape[-1]), "index": torch.arange(2)}
    with torch.no_grad():
        module.validation_step(batch, 0)
        estimate = module.generator_forward(batch)["estimate"]
        expected = (module.mel_spectrogram(estimate) - module.mel_spectrogram(audio)).abs().mean()
    torch.testing.assert_close(module.val_mel_distance.compute(), expected, **TOLERANCE)


@pytest.mark.parametrize(
    ("sample_rate", "n_fft", "n_mels", "f_max"),
    [(22050, 1024, 80, 8000.0), (22050, 1024, 80, None), (24000, 1024, 100, None), (44100, 2048, 128, None)],
)
def test_the_front_ends_filters_are_torchaudios_slaney_filters(sample_rate, n_fft, n_mels, f_max) -> None:
    """torchaudio computes the Slaney filters in float32; codecgan's equal librosa's (rounded from float64, as the
    fixture shows), 3.9e-6 of the largest filter value at most from torchaudio's."""
    front_end = HiFiGANLogMel(sample_rate, n_fft, n_fft // 4, n_fft, n_mels, f_max=f_max)
    top = f_max if f_max is not None else sample_rate / 2
    torchaudios = torchaudio.functional.melscale_fbanks(
        n_fft // 2 + 1, 0.0, top, n_mels, sample_rate, norm="slaney", mel_scale="slaney"
    )
    torch.testing.assert_close(front_end.filters.T, torchaudios, rtol=0, atol=4e-6 * float(torchaudios.max()))
    torch.testing.assert_close(front_end.filters.T, slaney_mel_filters(sample_rate, n_fft, n_mels, 0.0, f_max))


def test_the_front_end_is_bigvgans_mel_and_gives_one_frame_per_hop() -> None:
    config = RECORD["mel_config"]
    mel = HiFiGANLogMel(**config, f_max=None)(RECORD["audio"])
    torch.testing.assert_close(mel, RECORD["mel"], rtol=0, atol=1e-6 * float(RECORD["mel"].abs().max()))
    assert mel.shape == (2, config["n_mels"], RECORD["audio"].shape[-1] // config["hop_length"])
    assert HiFiGANLogMel.padding == "same"  # VocoderDataModule's mel crops: one frame per hop, none extra


def tiny_hifigan(**overrides) -> VocoderGAN:
    parts = {
        "generator": HiFiGANGenerator(16, (4, 4), (8, 8), 16, (3,), ((1, 3),), 2),
        "discriminator": DiscriminatorSet([HiFiGANMultiPeriodDiscriminator((2, 3), channel_mult=0.0625)]),
        "mel_spectrogram": HiFiGANLogMel(16000, 64, 16, 64, 16, f_max=None),
        "sample_rate": 16000,
        "loss_recipe": "hifigan",
    }
    return VocoderGAN(**{**parts, **overrides})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"generator": HiFiGANGenerator(16, (4, 8), (8, 16), 16, (3,), ((1, 3),), 2)},
            "generator.init_args.upsample_rates [4, 8] multiply to 32 samples per mel frame but "
            "model.init_args.mel_spectrogram.init_args.hop_length is 16",
        ),
        (
            {"generator": HiFiGANGenerator(20, (4, 4), (8, 8), 16, (3,), ((1, 3),), 2)},
            "generator.init_args.num_mels is 20 but model.init_args.mel_spectrogram.init_args.n_mels is 16",
        ),
        (
            {"mel_spectrogram": HiFiGANLogMel(16000, 63, 16, 63, 16, f_max=None)},
            "n_fft 63 minus model.init_args.mel_spectrogram.init_args.hop_length 16 must be even",
        ),
        (
            {"mel_spectrogram": HiFiGANLogMel(16000, 64, 16, 128, 16, f_max=None)},
            "win_length 128 exceeds model.init_args.mel_spectrogram.init_args.n_fft 64; set win_length: 64",
        ),
        (
            {"mel_spectrogram": HiFiGANLogMel(16000, 64, 16, 64, 16, f_max=9000.0)},
            "f_max 9000.0 Hz is above the Nyquist frequency",
        ),
        (
            {"discriminator": DiscriminatorSet([MultiScaleSubbandCQTDiscriminator(24000, filters=4)])},
            "discriminator.init_args.discriminators[0].init_args.sample_rate is 24000 Hz but data.init_args."
            "sample_rate is 16000 Hz",
        ),
    ],
)
def test_inconsistent_settings_are_config_errors_naming_the_keys(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        tiny_hifigan(**overrides)


# (config, recipe, sample rate, hop, mels, excerpt samples): the references' configs (the presets' headers).
PRESETS = [
    ("vocoder_hifigan_22k", "hifigan", 22050, 256, 80, 8192),
    ("vocoder_bigvgan_24k", "bigvgan", 24000, 256, 100, 65536),
    ("vocoder_bigvgan_44k", "bigvgan", 44100, 512, 128, 65536),
    ("vocoder_hifigan_tiny", "hifigan", 16000, 64, 32, 4096),
]


@pytest.mark.parametrize(("name", "recipe", "sample_rate", "hop", "mels", "samples"), PRESETS)
def test_presets_agree_on_rate_hop_bands_and_excerpt(name, recipe, sample_rate, hop, mels, samples) -> None:
    """Without building the networks (tests/test_cli.py instantiates every preset, the large ones in the slow
    suite): the settings VocoderGAN checks at start-up agree, at the reference's values."""
    config = yaml.safe_load((EXPERIMENTS / f"{name}.yaml").read_text())
    model, data = config["model"]["init_args"], config["data"]["init_args"]
    front_end, generator = model["mel_spectrogram"]["init_args"], model["generator"]["init_args"]
    assert model["loss_recipe"] == recipe
    assert data["sample_rate"] == front_end["sample_rate"] == sample_rate
    assert front_end["hop_length"] == math.prod(generator["upsample_rates"]) == hop
    assert front_end["n_mels"] == generator["num_mels"] == mels
    assert len(generator["upsample_kernel_sizes"]) == len(generator["upsample_rates"])
    assert round(data["crop_seconds"] * sample_rate) == samples
    check_whole_hops("data.init_args.crop_seconds", samples, hop, sample_rate)
    for member in model["discriminator"]["init_args"]["discriminators"]:
        rate = member.get("init_args", {}).get("sample_rate")
        assert rate in (None, sample_rate), member
    HiFiGANLogMel(**front_end)  # the front-end's own checks pass


@pytest.mark.slow
def test_the_tiny_hifigan_vocoder_learns(tmp_path: Path) -> None:
    """200 steps of experiments/vocoder_hifigan_tiny.yaml, validated every 50; 54 s to 2 minutes on 2 shared cores.
    The config's 400 steps measured val/mel_distance 2.09, 1.29, 1.10, 1.01 at steps 99 to 399 (docs/vocoders.md)."""
    run_dir = tmp_path / "run"
    trainer = tiny_trainer_overlay(run_dir, max_steps=200, val_every=50)["trainer"]
    del trainer["callbacks"]
    trainer["log_every_n_steps"] = 10
    run_codecgan("fit", "vocoder_hifigan_tiny.yaml", tmp_path, "overlay", {"trainer": trainer})
    history = MetricHistory.from_tensorboard_run(str(run_dir / "tb"))
    mel = [point.value for point in history.series("val/mel_distance")]
    assert len(mel) == 4 and mel[-1] < 0.95 * mel[0], mel


@pytest.mark.parametrize("recipe", ["hifigan", "bigvgan"])
def test_one_training_step_of_each_recipe_logs_every_term(tmp_path: Path, recipe: str) -> None:
    module = tiny_hifigan(loss_recipe=recipe, grad_clip_g=500.0, grad_clip_d=500.0)
    data = CodecDataModule(16000, crop_seconds=0.128, batch_size=2, synthetic_items=(2, 2, 2), synthetic_seconds=0.2)
    trainer = L.Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=tmp_path,
        max_steps=1,
        log_every_n_steps=1,
        limit_val_batches=1,
        val_check_interval=1,
    )
    trainer.fit(module, data)
    logged = {name: float(value) for name, value in trainer.callback_metrics.items()}
    for tag in ("loss_g", "loss_d", "loss_mel", "loss_adv", "loss_fm"):
        assert math.isfinite(logged[f"train/{tag}"]) and logged[f"train/{tag}"] > 0, tag
    assert logged["train/loss_g"] == pytest.approx(
        logged["train/loss_mel"] + logged["train/loss_adv"] + logged["train/loss_fm"], rel=1e-6
    )
    assert 0 < logged["val/mel_distance"] < 20
