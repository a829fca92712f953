"""The vocoder measures of one utterance (``VocoderScores``): their values for identical audio and for known
changes (a gain, a pitch shift of a semitone), and PESQ at 16 kHz whatever the model's rate."""

from __future__ import annotations

import math
from concurrent.futures import Executor, Future
from concurrent.futures.process import BrokenProcessPool

import numpy as np
import pytest
import torch

from codecgan.evaluation.vocoder_scores import VOCODER_MEASURES, VocoderScores
from codecgan.losses.vocos_losses import VocosMelLoss
from codecgan.metrics import PesqPool


def voiced(f0_hz: float, sample_rate: int, seconds: float = 1.0, seed: int = 0) -> torch.Tensor:
    """``[T]``: ten harmonics of ``f0_hz`` with a slow level change and a little noise, a vowel-like signal."""
    times = np.arange(round(seconds * sample_rate)) / sample_rate
    harmonics = sum(np.sin(2 * np.pi * k * f0_hz * times) / k for k in range(1, 11))
    envelope = 0.5 + 0.3 * np.sin(2 * np.pi * 1.5 * times)
    noise = 1e-3 * np.random.default_rng(seed).standard_normal(times.size)
    return torch.from_numpy(0.2 * envelope * harmonics + noise).float()


def scores_of(sample_rate: int) -> VocoderScores:
    # dio: WORLD's fast tracker, so each test stays well under a second.
    return VocoderScores(sample_rate, VocosMelLoss(sample_rate, 512, 128, 64), PesqPool(0), f0_tracker="dio")


def test_identical_audio_scores_zero_distances_and_perfect_pitch():
    reference = voiced(200.0, 16000)
    row = scores_of(16000)(reference, reference.clone(), utterance=3)
    assert list(row) == ["utterance", "system", *VOCODER_MEASURES]
    assert (row["utterance"], row["system"]) == (3, "vocoder")
    for name in ("mel_distance", "stft_distance", "mcd_db", "pitch_rmse_cents", "periodicity_rmse"):
        assert row[name] == pytest.approx(0.0, abs=1e-6), name
    assert row["vuv_f1"] == 1.0
    assert row["pesq_wb"] == pytest.approx(4.64, abs=0.01)  # P.862.2's ceiling


def test_half_the_gain_moves_only_the_level_measures():
    reference = voiced(200.0, 16000)
    row = scores_of(16000)(reference, 0.5 * reference)
    # Every mel bin is halved (the magnitude mel, far above the log's floor): |log 0.5| per bin.
    assert row["mel_distance"] == pytest.approx(math.log(2.0), abs=1e-3)
    assert row["mcd_db"] == pytest.approx(0.0, abs=1e-6)  # c0, the level, is left out of MCD
    assert row["pitch_rmse_cents"] == pytest.approx(0.0, abs=1e-6)
    assert row["vuv_f1"] == 1.0
    assert row["stft_distance"] > 0.1


def test_a_semitone_up_scores_a_pitch_error_of_100_cents():
    reference, estimate = voiced(200.0, 16000), voiced(200.0 * 2 ** (1 / 12), 16000)
    row = scores_of(16000)(reference, estimate)
    assert row["pitch_rmse_cents"] == pytest.approx(100.0, abs=5.0)
    assert row["vuv_f1"] == pytest.approx(1.0, abs=0.02)
    assert row["mcd_db"] > 0.5


def test_pesq_of_another_rate_is_scored_at_16_khz_and_a_failure_is_nan():
    reference = voiced(150.0, 24000, seconds=0.4)
    scores = scores_of(24000)
    assert scores(reference, reference.clone())["pesq_wb"] == pytest.approx(4.64, abs=0.01)
    # A silent estimate is refused before PESQ: NaN, counted by the report, never a 0.
    assert math.isnan(scores(reference, torch.zeros_like(reference))["pesq_wb"])


def test_scores_refuse_signals_of_different_lengths():
    with pytest.raises(ValueError, match=r"must be \[T\]"):
        scores_of(16000)(torch.zeros(100), torch.zeros(99))


class BrokenWorkers(Executor):
    """An executor whose worker died: every future fails as a crashed process pool's do."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        future.set_exception(BrokenProcessPool("a worker process died"))
        return future


def test_a_failed_world_worker_gives_nan_world_measures_and_keeps_the_others():
    reference = voiced(200.0, 16000, seconds=0.5)
    scores = VocoderScores(16000, VocosMelLoss(16000, 512, 128, 64), PesqPool(0), BrokenWorkers())
    row = scores(reference, reference.clone())
    assert all(math.isnan(row[name]) for name in ("mcd_db", "pitch_rmse_cents", "periodicity_rmse", "vuv_f1"))
    assert row["mel_distance"] == 0.0 and row["pesq_wb"] == pytest.approx(4.64, abs=0.01)
