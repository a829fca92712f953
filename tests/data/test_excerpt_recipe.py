"""DAC's data recipe: loudness normalisation, salient excerpts, phase shift; and codec_dac.yaml turning it on."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torchaudio.functional as audio_functional
import yaml

from codecgan.data import CodecDataModule, EnhancementDataModule
from codecgan.data.excerpt_recipe import ExcerptRecipe
from codecgan.data.loudness import MIN_LOUDNESS_DB, integrated_loudness_db
from codecgan.data.phase_shift import shift_phase
from tests.conftest import EXPERIMENTS
from tests.data.wav_files import noise, tone, write_audio

RATE = 16000


def measured_lufs(audio: torch.Tensor) -> float:
    return float(audio_functional.loudness(audio.double(), RATE))


def datamodule(root: Path, **recipe) -> CodecDataModule:
    module = CodecDataModule(
        sample_rate=RATE,
        train_dir=str(root),
        val_dir=str(root),
        crop_seconds=0.5,
        val_crop_seconds=0.5,
        batch_size=4,
        **recipe,
    )
    module.setup("fit")
    return module


def test_loudness_normalisation_reaches_the_target_within_half_a_db(tmp_path: Path) -> None:
    write_audio(tmp_path / "quiet.wav", noise(4.0, RATE, amplitude=0.003), RATE)  # about -50 LUFS
    write_audio(tmp_path / "loud.wav", tone(4.0, RATE, 1000.0, amplitude=0.9), RATE)  # about -1 LUFS
    module = datamodule(tmp_path, loudness_db=-16.0)
    for split, keys in (("train", [(index, 0) for index in range(8)]), ("val", [0, 1])):
        for key in keys:
            assert measured_lufs(module.datasets[split][key]["audio"]) == pytest.approx(-16.0, abs=0.5), (split, key)
    plain = datamodule(tmp_path)
    assert measured_lufs(plain.datasets["val"][0]["audio"]) > -5.0  # off by default


def test_a_peak_above_one_after_the_gain_is_scaled_down(tmp_path: Path) -> None:
    clicks = np.zeros(RATE * 2, dtype=np.float32)
    clicks[::4000] = 0.9  # loudness far below -16 LUFS, peak 0.9: the gain would push the peaks past 1
    write_audio(tmp_path / "clicks.wav", clicks, RATE, subtype="FLOAT")
    item = datamodule(tmp_path, loudness_db=-16.0).datasets["val"][0]
    assert float(item["audio"].abs().max()) == pytest.approx(1.0)


def test_salient_excerpts_are_never_below_the_cutoff_when_a_louder_one_exists(tmp_path: Path) -> None:
    # Seconds of noise alternate with seconds of digital silence: about a quarter of 0.5 s excerpts are silent.
    seconds = np.arange(10 * RATE) // RATE
    samples = np.where(seconds % 2 == 0, noise(10.0, RATE, amplitude=0.1), 0.0).astype(np.float32)
    write_audio(tmp_path / "gappy.wav", samples, RATE)
    keys = [(index, epoch) for epoch in range(3) for index in range(20)]
    plain = datamodule(tmp_path).datasets["train"]
    assert min(integrated_loudness_db(plain[key]["audio"], RATE) for key in keys) == MIN_LOUDNESS_DB
    salient = datamodule(tmp_path, salient_cutoff_db=-40.0).datasets["train"]
    assert min(integrated_loudness_db(salient[key]["audio"], RATE) for key in keys) >= -40.0
    again = datamodule(tmp_path, salient_cutoff_db=-40.0).datasets["train"]
    assert all(torch.equal(again[key]["audio"], salient[key]["audio"]) for key in keys[::7])  # deterministic redraws


def test_salient_choice_stops_at_the_first_loud_excerpt_and_else_keeps_the_loudest() -> None:
    def draws(amplitudes: list[float]):
        remaining = list(amplitudes)

        def draw() -> dict:
            audio = torch.from_numpy(noise(0.5, RATE, amplitude=remaining.pop(0)))[None]
            return {"audio": audio, "length": audio.shape[-1], "index": 0}

        return draw, remaining

    recipe = ExcerptRecipe(salient_cutoff_db=-40.0, salient_tries=4)
    draw, remaining = draws([1e-4, 0.1, 0.5, 0.5])
    excerpt, loudness = recipe.choose(draw, RATE)
    assert remaining == [0.5, 0.5] and loudness > -40.0  # two draws: the second was loud enough
    draw, remaining = draws([1e-4, 4e-4, 2e-4, 1e-5])
    excerpt, loudness = recipe.choose(draw, RATE)
    assert remaining == [] and float(excerpt["audio"].std()) == pytest.approx(4e-4, rel=0.05)
    with pytest.raises(ValueError, match="salient_tries"):
        ExcerptRecipe(salient_cutoff_db=-40.0, salient_tries=0)
    with pytest.raises(ValueError, match="loudness_db"):
        ExcerptRecipe(loudness_db=16.0)


@pytest.mark.parametrize("samples", [4000, 4001])
def test_phase_shift_rotates_every_component_and_keeps_the_magnitudes(samples: int) -> None:
    times = torch.arange(samples, dtype=torch.float64) / RATE
    periods = 2 * math.pi * 100 * times * (4000 / samples)  # a whole number of periods in the window
    cosine = torch.cos(periods)[None]
    torch.testing.assert_close(shift_phase(cosine, math.pi / 2), -torch.sin(periods)[None])
    torch.testing.assert_close(shift_phase(cosine, 0.0), cosine)
    audio = torch.from_numpy(noise(samples / RATE, RATE, seed=4))[None]
    torch.testing.assert_close(shift_phase(audio, math.pi), -audio, atol=1e-6, rtol=0)
    shifted = shift_phase(audio, 1.0)
    assert shifted.dtype == audio.dtype and not torch.allclose(shifted, audio, atol=1e-3)
    magnitude = torch.fft.rfft(audio).abs()[..., 1 : samples // 2]
    torch.testing.assert_close(torch.fft.rfft(shifted).abs()[..., 1 : samples // 2], magnitude, atol=1e-4, rtol=1e-4)


def test_phase_shift_moves_training_excerpts_only(tmp_path: Path) -> None:
    write_audio(tmp_path / "speechlike.wav", noise(3.0, RATE, amplitude=0.1), RATE)
    plain, shifted = datamodule(tmp_path), datamodule(tmp_path, phase_shift=True)
    for key in [(0, 0), (1, 0), (0, 1)]:
        before, after = plain.datasets["train"][key]["audio"], shifted.datasets["train"][key]["audio"]
        assert not torch.allclose(before, after, atol=1e-3)
        between_dc_and_nyquist = slice(1, before.shape[-1] // 2)
        torch.testing.assert_close(
            torch.fft.rfft(after).abs()[..., between_dc_and_nyquist],
            torch.fft.rfft(before).abs()[..., between_dc_and_nyquist],
            atol=2e-3,
            rtol=1e-3,
        )
    assert torch.equal(shifted.datasets["val"][0]["audio"], plain.datasets["val"][0]["audio"])


def test_codec_dac_config_turns_dacs_recipe_on_and_the_enhancement_family_tiles() -> None:
    init_args = yaml.safe_load((EXPERIMENTS / "codec_dac.yaml").read_text())["data"]["init_args"]
    module = CodecDataModule(**init_args)
    assert module.training_recipe == ExcerptRecipe(
        loudness_db=-16.0, salient_cutoff_db=-40.0, salient_tries=8, phase_shift=True
    )
    assert module.evaluation_recipe == ExcerptRecipe(loudness_db=-16.0)
    assert module.short_items == "zero_pad"
    assert CodecDataModule().training_recipe == ExcerptRecipe()  # off unless asked
    assert EnhancementDataModule().short_items == "tile"
    cmgan = yaml.safe_load((EXPERIMENTS / "enhance_cmgan.yaml").read_text())["data"]["init_args"]
    assert cmgan["val_crop"] == "full" and cmgan["short_items"] == "tile"
