"""Noises, mixing at an exact SNR, and the paired synthetic dataset with its silent items."""

import numpy as np
import pesq
import pytest
import torch

from codecgan.data.noise import (
    NOISE_RMS,
    SyntheticNoisySpeech,
    babble_noise,
    make_noise,
    mix_at_snr,
    noise_gain_for_snr,
    pink_noise,
    white_noise,
)
from codecgan.data.synthetic_speech import synthesize_speech


def snr_db(clean: torch.Tensor, noisy: torch.Tensor) -> float:
    """10 log10(P(clean) / P(noisy - clean)), in float64."""
    clean, noise = clean.double(), noisy.double() - clean.double()
    return 10.0 * np.log10(clean.pow(2).mean().item() / noise.pow(2).mean().item())


def spectral_slope(noise: torch.Tensor) -> float:
    """Slope of log10(power) against log10(frequency), averaged over 1024-sample frames."""
    frames = noise.double().numpy().reshape(-1, 1024)
    power = (np.abs(np.fft.rfft(frames * np.hanning(1024), axis=1)) ** 2).mean(axis=0)
    bins = np.arange(4, 400)  # skip DC and the lowest bins, where the window smears
    return float(np.polyfit(np.log10(bins), np.log10(power[bins]), 1)[0])


@pytest.mark.parametrize("kind", ["white", "pink", "babble"])
def test_noises_have_the_documented_shape_level_and_determinism(kind: str) -> None:
    noise = make_noise(kind, 16000, 16000, seed=3)
    assert noise.shape == (16000,) and noise.dtype == torch.float32
    assert noise.double().pow(2).mean().sqrt().item() == pytest.approx(NOISE_RMS, rel=1e-4)
    assert torch.equal(noise, make_noise(kind, 16000, 16000, seed=3))
    assert not torch.equal(noise, make_noise(kind, 16000, 16000, seed=4))


def test_white_noise_is_flat_and_pink_noise_falls_3_db_per_octave() -> None:
    assert abs(spectral_slope(white_noise(64 * 1024, seed=0))) < 0.1
    assert spectral_slope(pink_noise(64 * 1024, seed=0)) == pytest.approx(-1.0, abs=0.1)


def test_babble_is_speech_shaped_and_has_no_long_gaps() -> None:
    babble = babble_noise(2 * 16000, 16000, seed=1, talkers=4).double()
    power = np.abs(np.fft.rfft(babble.numpy())) ** 2
    frequencies = np.fft.rfftfreq(babble.numel(), 1 / 16000)
    assert power[frequencies < 4000].sum() / power.sum() > 0.9
    frame_rms = babble.reshape(-1, 800).pow(2).mean(dim=1).sqrt()  # 50 ms frames
    assert (frame_rms > 0.1 * NOISE_RMS).float().mean() > 0.9
    with pytest.raises(ValueError, match="talkers"):
        babble_noise(100, 16000, seed=1, talkers=0)


def test_unknown_noise_kind_is_refused_with_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match="'brown'.*white"):
        make_noise("brown", 100, 16000, seed=0)


@pytest.mark.parametrize("target_db", [-5.0, 0.0, 7.5, 20.0, 40.0])
def test_mix_at_snr_is_exact(target_db: float) -> None:
    clean = synthesize_speech(16000, 16000, seed=2).unsqueeze(0)
    noise = pink_noise(16000, seed=5).unsqueeze(0)
    noisy = mix_at_snr(clean, noise, target_db)
    assert noisy.shape == clean.shape and noisy.dtype == torch.float32
    assert snr_db(clean, noisy) == pytest.approx(target_db, abs=1e-3)


def test_mix_at_snr_refuses_silent_signals_and_mismatched_shapes() -> None:
    clean, noise = torch.ones(100), torch.ones(100)
    with pytest.raises(ValueError, match="power"):
        mix_at_snr(torch.zeros(100), noise, 0.0)
    with pytest.raises(ValueError, match="power"):
        noise_gain_for_snr(clean, torch.zeros(100), 0.0)
    with pytest.raises(ValueError, match="differ"):
        mix_at_snr(clean, torch.ones(99), 0.0)


def test_noisy_dataset_items_follow_the_interface_and_hit_their_snr() -> None:
    dataset = SyntheticNoisySpeech(8, 1.0, 16000, seed=1, snr_db_range=(-5.0, 10.0))
    kinds = set()
    for index in range(len(dataset)):
        item = dataset[index]
        assert set(item) == {"noisy", "clean", "length", "index"}
        assert item["noisy"].shape == item["clean"].shape == (1, 16000)
        assert item["length"] == 16000 and item["index"] == index
        assert item["noisy"].abs().max() <= 1.0
        target_db, kind = dataset.mixture_parameters(index)
        kinds.add(kind)
        assert -5.0 <= target_db <= 10.0
        assert snr_db(item["clean"], item["noisy"]) == pytest.approx(target_db, abs=1e-3)
    assert len(kinds) >= 2


def test_noisy_dataset_is_deterministic_and_respects_noise_kinds() -> None:
    first = SyntheticNoisySpeech(4, 0.5, 16000, seed=9, noise_kinds=("pink",))
    second = SyntheticNoisySpeech(4, 0.5, 16000, seed=9, noise_kinds=("pink",))
    for index in range(4):
        assert first.mixture_parameters(index)[1] == "pink"
        assert torch.equal(first[index]["noisy"], second[index]["noisy"])
    other_seed = SyntheticNoisySpeech(4, 0.5, 16000, seed=8)
    assert not torch.equal(first[0]["noisy"], other_seed[0]["noisy"])


def test_loud_mixtures_are_scaled_below_full_scale_keeping_the_snr() -> None:
    dataset = SyntheticNoisySpeech(6, 0.5, 16000, seed=2, snr_db_range=(-10.0, -10.0))
    for index in range(len(dataset)):
        item = dataset[index]
        assert item["noisy"].abs().max() <= 1.0
        assert snr_db(item["clean"], item["noisy"]) == pytest.approx(-10.0, abs=1e-3)


def test_silent_items_make_pesq_raise_no_utterances() -> None:
    dataset = SyntheticNoisySpeech(12, 2.0, 16000, seed=4, silent_item_fraction=0.25)
    silent = [index for index in range(len(dataset)) if dataset.is_silent(index)]
    assert len(silent) == 3
    rebuilt = SyntheticNoisySpeech(12, 2.0, 16000, seed=4, silent_item_fraction=0.25)
    assert [index for index in range(12) if rebuilt.is_silent(index)] == silent
    for index in silent:
        item = dataset[index]
        clean, noisy = item["clean"][0].numpy(), item["noisy"][0].numpy()
        assert noisy.std() > 0.01, "silent items still carry noise"
        with pytest.raises(pesq.NoUtterancesError), np.errstate(all="ignore"):
            pesq.pesq(16000, clean, clean, "wb")
        with pytest.raises(pesq.NoUtterancesError):
            pesq.pesq(16000, clean, noisy, "wb")
    speaking = next(index for index in range(len(dataset)) if not dataset.is_silent(index))
    clean = dataset[speaking]["clean"][0].numpy()
    assert pesq.pesq(16000, clean, clean, "wb") >= 4.4


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"snr_db_range": (10.0, 0.0)}, "snr_db_range"),
        ({"noise_kinds": ("white", "brown")}, "noise_kinds"),
        ({"noise_kinds": ()}, "noise_kinds"),
        ({"silent_item_fraction": 1.5}, "silent_item_fraction"),
    ],
)
def test_noisy_dataset_validates_its_arguments(arguments: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SyntheticNoisySpeech(4, 1.0, 16000, **arguments)
