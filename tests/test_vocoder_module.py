"""The vocoder family (`VocoderGAN`): start-up checks that name the config key, Vocos's losses as its own training step
combines them (the fixture written by vocos 0.1.0), one training step that logs every term, and a tiny fit whose
validation mel distance falls and whose diagnosis is quiet."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch

from codecgan.config_error import ConfigError
from codecgan.data import CodecDataModule
from codecgan.diagnosis.history import MetricHistory
from codecgan.models import (
    DiscriminatorSet,
    VocosGenerator,
    VocosMelSpectrogram,
    VocosMultiPeriodDiscriminator,
    VocosMultiResolutionDiscriminator,
)
from codecgan.models.vocos_checkpoint import from_vocos_state_dict, vocos_mel_state_dict
from codecgan.vocoder_module import VocoderGAN
from codecgan.vocoder_settings import check_whole_hops
from tests.conftest import ROOT, run_codecgan, tiny_trainer_overlay
from tests.models.test_vocos_reference import FIXTURES, TOLERANCE, loaded_discriminators, tiny_parts


def tiny_vocoder(**overrides) -> VocoderGAN:
    """The tiny config's parts at 16 kHz (hop 64, 32 mels), built directly."""
    parts = {
        "generator": VocosGenerator(n_mels=32, dim=16, intermediate_dim=32, num_layers=1, n_fft=256, hop_length=64),
        "discriminator": DiscriminatorSet(
            [
                VocosMultiPeriodDiscriminator(periods=(2, 3), channels=(4, 4, 4, 4, 4)),
                VocosMultiResolutionDiscriminator(window_lengths=(256, 128), channels=4),
            ]
        ),
        "mel_spectrogram": VocosMelSpectrogram(16000, n_fft=256, hop_length=64, n_mels=32),
        "sample_rate": 16000,
        "discriminator_weights": [1.0, 0.1],
    }
    return VocoderGAN(**{**parts, **overrides})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"loss_recipe": "melgan"}, r"loss_recipe must be one of \['vocos', 'hifigan', 'bigvgan'\], got 'melgan'"),
        (
            {"mel_spectrogram": VocosMelSpectrogram(24000, n_fft=256, hop_length=64, n_mels=32)},
            r"mel_spectrogram\.init_args\.sample_rate is 24000 Hz but data\.init_args\.sample_rate is 16000 Hz.*"
            r"sample_rate: 16000",
        ),
        (
            {"mel_spectrogram": VocosMelSpectrogram(16000, n_fft=256, hop_length=128, n_mels=32)},
            r"generator\.init_args\.hop_length is 64 samples but .*mel_spectrogram\.init_args\.hop_length is 128.*"
            r"Set both to 128",
        ),
        (
            {"mel_spectrogram": VocosMelSpectrogram(16000, n_fft=256, hop_length=64, n_mels=40)},
            r"generator\.init_args\.n_mels is 32 but .*mel_spectrogram\.init_args\.n_mels is 40.*Set both to 40",
        ),
        ({"discriminator_weights": [1.0]}, r"discriminator_weights must hold 2 non-negative numbers.*got \[1\.0\]"),
        ({"loss_weights": {"mrd": 0.1}}, r"loss_weights has unknown keys \['mrd'\]"),
    ],
)
def test_inconsistent_settings_are_config_errors_naming_the_keys(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        tiny_vocoder(**overrides)


def test_an_excerpt_that_is_not_a_whole_number_of_hops_names_the_key_and_consistent_lengths() -> None:
    check_whole_hops("data.init_args.crop_seconds", 4096, 64, 16000)  # 64 hops
    with pytest.raises(ConfigError) as error:
        check_whole_hops("data.init_args.crop_seconds", 4000, 64, 16000)
    assert str(error.value) == (
        "data.init_args.crop_seconds gives 4000 samples at 16000 Hz, not a whole number of hops of 64 samples "
        "(model.init_args.generator.init_args.hop_length): the generated audio would not cover the excerpt. "
        "Use 0.248 (3968 samples) or 0.252 (4032 samples)."
    )
    with pytest.raises(ConfigError, match=r"Use 0\.68267 \(16384 samples\) or 0\.69333 \(16640 samples\)"):
        check_whole_hops("data.init_args.crop_seconds", 16500, 256, 24000)


@pytest.mark.parametrize("samples", [4096, 4000, 4097])
def test_an_item_of_any_length_gets_an_estimate_of_its_length(samples: int) -> None:
    """Whole hops run as they are; other lengths are padded to whole hops and the estimate cut back."""
    audio = 0.1 * torch.randn(1, 1, samples, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        forward = tiny_vocoder().generator_forward({"audio": audio, "length": torch.tensor([samples])})
    assert forward["estimate"].shape == (1, 1, samples) and forward["mel"].shape == (1, 32, math.ceil(samples / 64) + 1)


def test_fit_refuses_a_crop_that_is_not_a_whole_number_of_hops_before_the_first_step(tmp_path: Path) -> None:
    data = CodecDataModule(16000, crop_seconds=0.25, val_crop_seconds=0.256, synthetic_items=(4, 2, 2))
    trainer = quiet_trainer(tmp_path, max_steps=1)
    with pytest.raises(ConfigError, match=r"crop_seconds gives 4000 samples .* Use 0\.248 .* or 0\.252"):
        trainer.fit(tiny_vocoder(), data)
    assert trainer.global_step == 0
    data = CodecDataModule(16000, crop_seconds=0.256, val_crop_seconds=0.25, synthetic_items=(4, 2, 2))
    with pytest.raises(ConfigError, match=r"val_crop_seconds gives 4000 samples"):
        quiet_trainer(tmp_path, max_steps=1).fit(tiny_vocoder(), data)


def quiet_trainer(tmp_path: Path, **settings) -> L.Trainer:
    """A CPU Trainer without logger, checkpoints, progress bar or summary."""
    return L.Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=tmp_path,
        **settings,
    )


def test_the_losses_are_vocos_training_steps_own(vocos_record: dict) -> None:
    """The module's discriminator and generator losses on the fixture's batch and weights equal what VocosExp's
    training_step computed (hinge, per-discriminator means, MRD 0.1, feature matching, mel x 45)."""
    mel, generator = tiny_parts(vocos_record, "center")
    state = vocos_record["generators"]["center"]["state_dict"]
    mel.load_state_dict(vocos_mel_state_dict(state))
    generator.load_state_dict(from_vocos_state_dict(state))
    mpd, mrd = loaded_discriminators(vocos_record)
    config = vocos_record["config"]
    module = VocoderGAN(
        generator, DiscriminatorSet([mpd, mrd]), mel, config["sample_rate"], discriminator_weights=[1.0, 0.1]
    )
    audio = vocos_record["audio"].reshape(2, 1, -1)
    batch = {"audio": audio, "length": torch.full((2,), audio.shape[-1])}
    with torch.no_grad():
        forward = module.generator_forward(batch)
        assert forward["estimate"].shape == audio.shape
        loss_d, extra = module.discriminator_loss(batch, forward)
        terms, _ = module.generator_loss(batch, forward, adversarial=True)
    steps = vocos_record["steps"]
    torch.testing.assert_close(loss_d, steps["discriminator_loss"], **TOLERANCE)
    torch.testing.assert_close(sum(terms.values()), steps["generator_loss"], **TOLERANCE)
    assert sorted(terms) == ["loss_adv", "loss_fm", "loss_mel"]
    assert extra["d_loss_chance"] == pytest.approx(2.2)  # hinge's 2 per discriminator, MRD weighted 0.1


@pytest.fixture(scope="module")
def vocos_record() -> dict:
    return torch.load(FIXTURES / "tiny.pt", weights_only=True)


def test_one_training_step_logs_every_term(tmp_path: Path) -> None:
    module = tiny_vocoder()
    data = CodecDataModule(16000, crop_seconds=0.128, batch_size=2, synthetic_items=(2, 2, 2), synthetic_seconds=0.2)
    trainer = quiet_trainer(tmp_path, max_steps=1, log_every_n_steps=1, limit_val_batches=1, val_check_interval=1)
    trainer.fit(module, data)
    logged = {name: float(value) for name, value in trainer.callback_metrics.items()}
    for tag in ("loss_g", "loss_d", "loss_mel", "loss_adv", "loss_fm"):
        assert math.isfinite(logged[f"train/{tag}"]) and logged[f"train/{tag}"] > 0, tag
    assert logged["train/loss_g"] == pytest.approx(
        logged["train/loss_mel"] + logged["train/loss_adv"] + logged["train/loss_fm"], rel=1e-6
    )
    assert 0 < logged["val/mel_distance"] < 20


@pytest.mark.slow
def test_the_tiny_vocoder_learns_and_its_diagnosis_is_quiet(tmp_path: Path) -> None:
    """200 steps of experiments/vocoder_vocos_tiny.yaml with its diagnostic callbacks, validated every 50. Measured:
    val/mel_distance 3.545, 3.360, 3.313, 3.171 (10.6% lower), val/snr_db -0.22 to -0.55 dB with no NEGATIVE_SNR,
    AMPLITUDE_UNSTABLE and GAN_TERM_NEGLIGIBLE info; about 3 minutes on 2 shared cores."""
    run_dir = tmp_path / "run"
    trainer = tiny_trainer_overlay(run_dir, max_steps=200, val_every=50)["trainer"]
    del trainer["callbacks"]  # the config's diagnostics stay
    trainer["log_every_n_steps"] = 10
    run_codecgan("fit", "vocoder_vocos_tiny.yaml", tmp_path, "overlay", {"trainer": trainer})
    history = MetricHistory.from_tensorboard_run(str(run_dir / "tb"))
    mel = [point.value for point in history.series("val/mel_distance")]
    assert len(mel) == 4 and mel[-1] < 0.95 * mel[0], mel
    diagnosis = subprocess.run(
        [sys.executable, "-m", "codecgan", "diagnose", str(run_dir), "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    findings = json.loads(diagnosis.stdout)
    codes = {f["code"] for f in findings}
    assert "NEGATIVE_SNR" not in codes and history.has("val/snr_db"), findings
    # GAN_TERM_NEGLIGIBLE is info in the vocoder family (its share at the waveform is not meaningful there:
    # docs/diagnostics.md), so nothing is above info.
    assert [f for f in findings if f["severity"] != "info"] == [], findings
