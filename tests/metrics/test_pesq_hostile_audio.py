"""Hostile audio in the PESQ path: every kind is counted the same whatever the number of workers, none becomes a
metric-discriminator target, and no worker can hold a batch past its time bound."""

from __future__ import annotations

import math
import os
import signal

import numpy as np
import pytest
import torch

from codecgan import MetricGANEnhancer
from codecgan.config_error import ConfigError
from codecgan.data import synthesize_speech
from codecgan.lightning_cli import build_cli
from codecgan.metrics import FAILURE_KINDS, PendingPesq, PesqHandle, PesqLimits, PesqPool, PesqResult
from codecgan.models import CMGANGenerator, MetricDiscriminator
from tests.conftest import EXPERIMENTS, tiny_trainer_overlay, write_overlay
from tests.test_pesq_pool import pesq_worker_children

SAMPLE_RATE = 16000
SECOND = SAMPLE_RATE
LIMITS = PesqLimits(max_clip_seconds=1.0)  # so that a 1.25 s clip is too long without hours of audio
# Each row of the hostile batch and what PESQ makes of it: a failure kind, or None where the library scores it.
HOSTILE = {
    "valid": None,
    "NaN in the estimate": "nonfinite",
    "+inf in the estimate": "nonfinite",
    "-inf in the reference": "nonfinite",
    "10 samples": "too_short",
    "all-zero estimate": "silent_estimate",
    "estimate of 1e-30 noise": "silent_estimate",  # refused by the library: its power underflows to zero
    "all-zero reference": "no_utterances",
    "longer than max_clip_seconds": "too_long",
    # Scored: PESQ finds the reference's speech and rates these estimates low, but they are valid inputs.
    "DC-only estimate": None,
    "estimate clipped at +-1": None,
    "full-scale square wave estimate": None,
}


def hostile_batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``HOSTILE``'s rows: clean and estimate ``[B, 1, 1.25 s]`` and lengths ``[B]`` (1 s, unless the row says)."""
    rows = len(HOSTILE)
    clean = torch.stack([synthesize_speech(SECOND * 5 // 4, SAMPLE_RATE, seed) for seed in range(rows)])[:, None]
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    estimate = clean + 0.02 * noise
    length = torch.full((rows,), SECOND)
    row = dict(zip(HOSTILE, range(rows)))
    estimate[row["NaN in the estimate"], 0, 100] = math.nan
    estimate[row["+inf in the estimate"], 0, 200] = math.inf
    clean[row["-inf in the reference"], 0, 300] = -math.inf
    length[row["10 samples"]] = 10
    estimate[row["all-zero estimate"]] = 0.0
    estimate[row["estimate of 1e-30 noise"]] = 1e-30 * noise[row["estimate of 1e-30 noise"]]
    clean[row["all-zero reference"]] = 0.0
    length[row["longer than max_clip_seconds"]] = SECOND * 5 // 4
    estimate[row["DC-only estimate"]] = 0.5
    estimate[row["estimate clipped at +-1"]] = (20 * estimate[row["estimate clipped at +-1"]]).clamp(-1, 1)
    estimate[row["full-scale square wave estimate"]] = torch.sign(estimate[row["full-scale square wave estimate"]])
    return clean, estimate, length


@pytest.fixture(scope="module")
def hostile_results() -> dict[int, PesqResult]:
    clean, estimate, length = hostile_batch()
    results = {}
    for processes in (0, 1, 2):
        with PesqPool(processes, limits=LIMITS) as pool:
            results[processes] = pool.score(clean, estimate, length)
            assert pool.replaced_workers == 0  # no hostile clip crashed or stalled a worker
    return results


def test_each_hostile_clip_is_counted_under_its_kind_whatever_the_number_of_workers(hostile_results):
    expected = list(HOSTILE.values())
    for processes, result in hostile_results.items():
        assert list(result.failures) == expected, processes
        assert result.failure_counts() == {kind: expected.count(kind) for kind in FAILURE_KINDS}
        assert result.failed_clips == 8
        scored = result.scores[[kind is None for kind in expected]]
        assert np.all((scored > 1.0) & (scored < 4.7))
        assert np.isnan(result.scores[[kind is not None for kind in expected]]).all()
        np.testing.assert_array_equal(result.scores, hostile_results[0].scores)  # NaN == NaN here


@pytest.mark.parametrize("processes", [0, 2])
def test_a_clip_of_hours_is_refused_by_its_length_before_its_samples_are_read(processes):
    hours = 3 * 3600 * SAMPLE_RATE
    nan = torch.full((1, 1, 1), math.nan).expand(1, 1, hours)  # no memory: every sample is the same NaN
    with PesqPool(processes) as pool:
        result = pool.score(nan, nan)  # default limits: 60 s
        assert result.failures == ("too_long",) and math.isnan(result.scores[0])  # not "nonfinite": never read
        assert pool.replaced_workers == 0


def speech_batch(clips: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    clean = torch.stack([synthesize_speech(SECOND, SAMPLE_RATE, seed + i) for i in range(clips)])[:, None]
    return clean, clean + 0.02 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(seed))


# Two processes (3.5 s) in make test-slow; one in the default suite.
@pytest.mark.parametrize("processes", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_a_stuck_worker_is_killed_and_replaced_and_the_pool_answers_the_next_batch(processes):
    """A worker stopped with SIGSTOP hangs as a worker stuck in the library would, before it even reads the clip
    (1 s of audio fills its stdin's pipe): the feeder's write and wait share one deadline."""
    clean, noisy = speech_batch(4, seed=10)
    with PesqPool(0) as inline:
        expected = inline.score(clean, noisy).scores
    with PesqPool(processes, limits=PesqLimits(timeout_s=3.0, timeout_per_audio_second=0.0)) as pool:
        stuck = pool.worker_pids[0]
        os.kill(stuck, signal.SIGSTOP)
        first = pool.score(clean, noisy)
        assert first.failure_counts()["timeout"] == 1 and first.failed_clips == 1  # one clip, the stuck worker's
        scored = [kind is None for kind in first.failures]
        np.testing.assert_array_equal(first.scores[scored], expected[scored])
        assert pool.replaced_workers == 1 and stuck not in pool.worker_pids
        assert stuck not in pesq_worker_children()  # killed and reaped
        second = pool.score(clean, noisy)
        assert second.failures == (None,) * 4
        np.testing.assert_array_equal(second.scores, expected)


def make_module(policy: str) -> MetricGANEnhancer:
    torch.manual_seed(0)
    generator = CMGANGenerator(channels=4, num_blocks=1, attention_heads=2, dense_depth=1, dropout=0.0)
    return MetricGANEnhancer(
        generator, MetricDiscriminator(channels=4, dropout=0.0), pesq_failure_policy=policy, pesq_workers=0
    )


@pytest.mark.parametrize("policy", ["mask", "drop_batch"])
def test_no_failed_clip_becomes_a_metric_discriminator_target(hostile_results, policy):
    result = hostile_results[0]
    module = make_module(policy).eval()  # eval: the generator's forward queues no PESQ of its own
    clean, noisy = speech_batch(len(HOSTILE), seed=20)
    batch = {"clean": clean[..., : SECOND // 4], "noisy": noisy[..., : SECOND // 4]}
    batch["length"] = torch.full((len(HOSTILE),), SECOND // 4)
    with torch.no_grad():
        forward = module.generator_forward(batch)
    clean_magnitude, estimate_magnitude = forward["clean_magnitude"], forward["magnitude"]
    forward["pending_pesq"] = PendingPesq(PesqHandle(result=result), clean_magnitude, estimate_magnitude)
    loss, outputs = module.discriminator_loss(batch, forward)

    failed = torch.tensor([kind is not None for kind in HOSTILE.values()])
    assert torch.isnan(outputs["pesq_target"][failed]).all() and torch.isfinite(outputs["pesq_target"][~failed]).all()
    assert outputs["pesq_failures"] == result.failure_counts() and outputs["pesq_failed_clips"] == 8
    assert outputs["pesq_dropped_batch"] == int(policy == "drop_batch")
    clean_term = (module.discriminator(clean_magnitude, clean_magnitude) - 1).square().mean()
    prediction = module.discriminator(clean_magnitude, estimate_magnitude)
    if policy == "mask":  # the metric term is the mean over the 4 scored clips only
        metric_term = (prediction[~failed] - outputs["pesq_target"][~failed]).square().mean()
        assert loss.item() == pytest.approx((clean_term + metric_term).item(), rel=1e-6)
    else:  # CMGAN: no discriminator update at all
        assert bool(outputs["skip_update"]) and loss.item() == pytest.approx(clean_term.item(), rel=1e-6)


def test_crops_longer_than_the_pesq_limit_fail_at_start_naming_the_key(tmp_path):
    overlay = tiny_trainer_overlay(tmp_path / "run", max_steps=1)
    overlay["data"]["init_args"]["crop_seconds"] = 0.5
    overlay["model"] = {"init_args": {"pesq_workers": 0, "pesq_limits": {"max_clip_seconds": 0.4}}}
    config = write_overlay(tmp_path, "limits.yaml", overlay)
    cli = build_cli(["--config", str(EXPERIMENTS / "enhance_tiny.yaml"), "--config", str(config)], run=False)
    assert cli.model.pesq_limits == PesqLimits(max_clip_seconds=0.4)
    with pytest.raises(ConfigError, match=r"0.5 s crops, longer than model.init_args.pesq_limits.max_clip_seconds"):
        cli.trainer.fit(cli.model, cli.datamodule)
    assert pesq_worker_children() == []


def test_limits_are_validated_naming_the_key():
    with pytest.raises(ValueError, match="pesq_limits.max_clip_seconds must be at least 0.25"):
        PesqLimits(max_clip_seconds=0.1)
    with pytest.raises(ValueError, match="pesq_limits.timeout_s must be positive"):
        PesqLimits(timeout_s=0.0)
    assert PesqLimits().timeout_for(2 * SAMPLE_RATE, SAMPLE_RATE) == 12.0
    assert PesqLimits().max_samples(SAMPLE_RATE) == 60 * SAMPLE_RATE
