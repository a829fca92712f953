"""Synthetic speech: PESQ accepts it, it is deterministic, and it looks like speech."""

import hashlib
import os
import subprocess
import sys
import time

import numpy as np
import pesq
import pytest
import torch
import torchaudio.functional as audio_functional

from codecgan.data import synthetic_speech
from codecgan.data.synthetic_speech import SyntheticSpeech, derive_seed, synthesize_speech


def silent_runs_seconds(audio: torch.Tensor, sample_rate: int, threshold: float = 1e-4) -> list[float]:
    """Durations (s) of the runs of consecutive samples with |x| below ``threshold``."""
    quiet = np.concatenate([[False], (audio.abs() < threshold).numpy(), [False]])
    edges = np.flatnonzero(np.diff(quiet.astype(np.int8)))
    return list((edges[1::2] - edges[::2]) / sample_rate)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pesq_of_a_2_second_clip_against_itself_is_near_the_maximum(seed: int) -> None:
    clip = synthesize_speech(32000, 16000, seed).numpy()
    assert pesq.pesq(16000, clip, clip, "wb") >= 4.4


def test_pesq_finds_speech_in_every_2_second_clip() -> None:
    for seed in range(10, 30):
        clip = synthesize_speech(32000, 16000, seed).numpy()
        assert pesq.pesq(16000, clip, clip, "wb") >= 4.4, f"seed {seed}"


def test_degraded_copies_score_lower_the_more_noise_they_hold() -> None:
    clip = synthesize_speech(32000, 16000, 3).numpy().astype(np.float64)
    noise = np.random.default_rng(0).standard_normal(clip.size)
    scores = []
    for snr_db in (40.0, 20.0, 0.0):
        gain = np.sqrt(np.mean(clip**2) / np.mean(noise**2) / 10 ** (snr_db / 10))
        scores.append(pesq.pesq(16000, clip, (clip + gain * noise).astype(np.float32), "wb"))
    assert scores[0] > scores[1] > scores[2]
    assert scores[0] > 2.0 and scores[2] < 1.2


def test_same_seed_is_bitwise_identical_and_other_seeds_differ() -> None:
    first = synthesize_speech(16000, 16000, 7)
    assert torch.equal(first, synthesize_speech(16000, 16000, 7))
    assert not torch.equal(first, synthesize_speech(16000, 16000, 8))
    assert first.dtype == torch.float32 and first.shape == (16000,)


def test_output_ignores_the_global_random_generators() -> None:
    torch.manual_seed(1)
    np.random.seed(1)
    first = synthesize_speech(8000, 16000, 11)
    torch.manual_seed(2)
    np.random.seed(2)
    torch.rand(5), np.random.rand(5)
    assert torch.equal(first, synthesize_speech(8000, 16000, 11))


def test_same_seed_is_bitwise_identical_in_another_process() -> None:
    # Loads the module by path (not through codecgan.data) to keep the child's start-up short,
    # and uses another PYTHONHASHSEED to show no str/tuple hash leaks into the seeding.
    code = (
        "import hashlib, importlib.util, sys\n"
        "spec = importlib.util.spec_from_file_location('speech', sys.argv[1])\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        "audio = module.synthesize_speech(8000, 16000, 11)\n"
        "print(hashlib.sha256(audio.numpy().tobytes()).hexdigest())\n"
    )
    child = subprocess.run(
        [sys.executable, "-c", code, synthetic_speech.__file__],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    )
    here = hashlib.sha256(synthesize_speech(8000, 16000, 11).numpy().tobytes()).hexdigest()
    assert child.stdout.strip() == here


@pytest.mark.parametrize("seed", [0, 4, 9])
def test_speech_starts_early_and_pauses_are_real_but_bounded(seed: int) -> None:
    clip = synthesize_speech(4 * 16000, 16000, seed)
    runs = silent_runs_seconds(clip, 16000)
    first_sound = int(torch.nonzero(clip.abs() >= 1e-4)[0]) / 16000
    assert first_sound <= 0.3
    assert max(runs) >= 0.1, "no 100 ms pause of near-silence"
    # Trailing silence may be a pause cut short by the clip's end; every run is at most 0.6 s.
    assert max(runs) <= 0.61


@pytest.mark.parametrize("sample_rate", [8000, 24000, 44100])
def test_other_sample_rates_give_speech_with_pauses_and_a_sane_level(sample_rate: int) -> None:
    clip = synthesize_speech(2 * sample_rate, sample_rate, 5)
    assert clip.shape == (2 * sample_rate,) and torch.isfinite(clip).all()
    assert 0.5 <= clip.abs().max() <= 0.9
    assert max(silent_runs_seconds(clip, sample_rate)) >= 0.1
    if sample_rate > 16000:
        at_16k = audio_functional.resample(clip, sample_rate, 16000).numpy()
        assert pesq.pesq(16000, at_16k, at_16k, "wb") >= 4.4


def test_pitch_is_in_the_speech_range() -> None:
    sample_rate = 16000
    for seed in range(5):
        clip = synthesize_speech(2 * sample_rate, sample_rate, seed).double().numpy()
        frames = np.lib.stride_tricks.sliding_window_view(clip, 960)[::480]  # 60 ms frames
        frame = frames[np.argmax((frames**2).sum(axis=1))]
        autocorrelation = np.correlate(frame, frame, "full")[frame.size - 1 :]
        low, high = sample_rate // 250, sample_rate // 80
        f0_hz = sample_rate / (low + np.argmax(autocorrelation[low:high]))
        assert 85.0 <= f0_hz <= 230.0, f"seed {seed}: f0 {f0_hz:.1f} Hz"


def test_amplitude_is_modulated_at_the_syllable_rate() -> None:
    clip = synthesize_speech(4 * 16000, 16000, 1).double().numpy()
    envelope = np.sqrt((clip.reshape(-1, 160) ** 2).mean(axis=1))  # 10 ms frames
    power = np.abs(np.fft.rfft(envelope - envelope.mean())) ** 2
    frequencies = np.fft.rfftfreq(envelope.size, 0.01)
    syllable_band = power[(frequencies >= 2.5) & (frequencies <= 7.0)].sum()
    assert syllable_band / power[(frequencies > 0.2) & (frequencies <= 20.0)].sum() > 0.2


def test_most_energy_is_below_4_khz_like_speech() -> None:
    clip = synthesize_speech(2 * 44100, 44100, 2).double().numpy()
    power = np.abs(np.fft.rfft(clip)) ** 2
    frequencies = np.fft.rfftfreq(clip.size, 1 / 44100)
    assert power[frequencies < 4000].sum() / power.sum() > 0.9
    assert power[frequencies > 2000].sum() / power.sum() > 1e-3  # but not a pure hum


def test_generation_is_fast() -> None:
    synthesize_speech(16000, 16000, 0)  # warm-up
    started = time.perf_counter()
    synthesize_speech(10 * 16000, 16000, 1)
    milliseconds_per_second = (time.perf_counter() - started) * 1000 / 10
    # Measured ~7 ms/s on an idle core; the bound leaves room for a busy CI machine.
    assert milliseconds_per_second < 100


def test_dataset_items_follow_the_interface_and_are_stable() -> None:
    dataset = SyntheticSpeech(num_items=3, duration_seconds=0.5, sample_rate=16000, seed=4)
    assert len(dataset) == 3
    item = dataset[2]
    assert set(item) == {"audio", "length", "index"}
    assert item["audio"].shape == (1, 8000) and item["audio"].dtype == torch.float32
    assert item["length"] == 8000 and item["index"] == 2
    assert torch.equal(item["audio"][0], synthesize_speech(8000, 16000, derive_seed(4, 2)))
    assert not torch.equal(dataset[0]["audio"], dataset[1]["audio"])
    assert not torch.equal(dataset[0]["audio"], SyntheticSpeech(3, 0.5, 16000, seed=5)[0]["audio"])
    with pytest.raises(IndexError):
        dataset[3]


def test_derive_seed_separates_trailing_zeros_and_rejects_negatives() -> None:
    assert len({derive_seed(5), derive_seed(5, 0), derive_seed(5, 0, 0), derive_seed(0, 5)}) == 4
    assert derive_seed(5, 1) == derive_seed(5, 1) < 2**63
    with pytest.raises(ValueError, match="non-negative"):
        derive_seed(-1, 0)


def test_a_sample_rate_below_8_khz_is_refused() -> None:
    with pytest.raises(ValueError, match="8000 Hz"):
        synthesize_speech(100, 4000, 0)
