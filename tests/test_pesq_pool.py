"""The PESQ pool: failure kinds, independence from the worker count, dead workers, clean shutdown."""

from __future__ import annotations

import math
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from codecgan.data import synthesize_speech
from codecgan.metrics import FAILURE_KINDS, PesqPool, PesqResult, default_worker_count, score_clip

SAMPLE_RATE = 16000


def pesq_worker_children() -> list[int]:
    """PIDs of this process's live (non-zombie) children that run the PESQ worker script (a /proc scan)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
            if int(fields.get("PPid", "0")) != os.getpid() or fields.get("State", "").startswith("Z"):
                continue
            cmdline = (entry / "cmdline").read_bytes()
            for _ in range(100):  # empty while the child is still inside execve
                if cmdline:
                    break
                time.sleep(0.01)
                cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"pesq_worker.py" in cmdline:
            pids.append(int(entry.name))
    return pids


def speech_pair(seconds: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A clean synthetic utterance ``[1, T]`` and a noisy copy."""
    clean = synthesize_speech(round(seconds * SAMPLE_RATE), SAMPLE_RATE, seed)
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(seed)) * 0.02
    return clean[None], (clean + noise)[None]


@pytest.fixture(scope="module")
def known_batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[str | None]]:
    """Six 1 s clips: two valid, then one failure of each kind that ``score_clip`` assigns."""
    pairs = [speech_pair(1.0, seed) for seed in range(6)]
    clean = torch.stack([c for c, _ in pairs])
    estimate = torch.stack([e for _, e in pairs])
    length = torch.full((6,), SAMPLE_RATE)
    clean[2] = 0.0  # silent reference
    estimate[3] = 0.0  # a collapsed generator: the library would raise a plain ValueError
    estimate[4, 0, 100] = math.nan
    length[5] = SAMPLE_RATE // 4 - 1
    kinds = [None, None, "no_utterances", "silent_estimate", "nonfinite", "too_short"]
    return clean, estimate, length, kinds


def check_known(result: PesqResult, kinds: list[str | None]) -> None:
    assert list(result.failures) == kinds
    assert [math.isnan(s) for s in result.scores] == [kind is not None for kind in kinds]
    assert result.failed_clips == 4
    assert result.failure_counts() == {
        "no_utterances": 1,
        "too_short": 1,
        "nonfinite": 1,
        "other": 0,
        "worker_died": 0,
        "silent_estimate": 1,
        "too_long": 0,
        "timeout": 0,
    }


def test_each_failure_kind_is_classified_and_results_do_not_depend_on_the_worker_count(known_batch):
    clean, estimate, length, kinds = known_batch
    results = []
    for processes in (0, 1, 2):
        with PesqPool(processes) as pool:
            results.append(pool.score(clean, estimate, length))
            check_known(results[-1], kinds)
    for result in results[1:]:
        np.testing.assert_array_equal(result.scores, results[0].scores)  # NaN == NaN here
    assert 1.0 < results[0].scores[0] < 4.7


def test_score_clip_passes_valid_clips_through():
    clean, noisy = speech_pair(1.0, seed=7)
    score, kind = score_clip(clean[0].numpy(), noisy[0].numpy(), SAMPLE_RATE, "wb")
    assert kind is None and 1.0 < score < 4.7
    # Checkpoints store indices into FAILURE_KINDS (PendingPesq): the kinds keep their places.
    assert FAILURE_KINDS[:5] == ("no_utterances", "too_short", "nonfinite", "other", "worker_died")


def test_a_worker_killed_between_batches_is_replaced_and_loses_no_clip(known_batch):
    clean, estimate, length, kinds = known_batch
    with PesqPool(1) as pool:
        (old_pid,) = pool.worker_pids
        os.kill(old_pid, signal.SIGKILL)
        time.sleep(0.1)
        check_known(pool.score(clean, estimate, length), kinds)
        assert pool.replaced_workers == 1 and pool.worker_pids != [old_pid]


def test_a_worker_killed_mid_clip_counts_that_clip_as_worker_died():
    long_clean, long_noisy = speech_pair(20.0, seed=3)  # about 0.25 s of PESQ work
    short_clean, short_noisy = speech_pair(1.0, seed=4)
    pad = long_clean.shape[-1] - short_clean.shape[-1]
    clean = torch.stack([long_clean, torch.nn.functional.pad(short_clean, (0, pad))])
    noisy = torch.stack([long_noisy, torch.nn.functional.pad(short_noisy, (0, pad))])
    length = torch.tensor([long_clean.shape[-1], short_clean.shape[-1]])
    with PesqPool(1) as pool:
        handle = pool.submit(clean, noisy, length)
        time.sleep(0.05)
        os.kill(pool.worker_pids[0], signal.SIGKILL)
        result = handle.result(timeout=30)
        assert result.failures == ("worker_died", None)
        assert pool.replaced_workers == 1 and not math.isnan(result.scores[1])


def test_ctrl_c_does_not_reach_the_workers_and_no_worker_outlives_close():
    pool = PesqPool(2)
    pids = pool.worker_pids
    assert sorted(pesq_worker_children()) == sorted(pids)
    # The terminal sends Ctrl-C to its foreground process group: the workers are not in ours.
    assert all(os.getpgid(pid) != os.getpgid(0) for pid in pids)
    clean, noisy = speech_pair(0.5, seed=1)
    assert pool.score(clean[None], noisy[None]).failures == (None,)
    pool.close()
    assert pesq_worker_children() == []
    with pytest.raises(RuntimeError, match="closed"):
        pool.submit(torch.zeros(1, 1, 8000), torch.zeros(1, 1, 8000))


def test_clips_still_queued_at_close_get_worker_died_not_an_exception():
    clean, noisy = speech_pair(2.0, seed=5)
    pool = PesqPool(1)
    handle = pool.submit(clean[None].repeat(40, 1, 1), noisy[None].repeat(40, 1, 1))  # seconds of work
    pool.close()
    failures = handle.result(timeout=30).failures
    assert failures[-1] == "worker_died" and set(failures) <= {None, "worker_died"}


def test_a_garbage_collected_pool_stops_its_workers():
    pool = PesqPool(1)
    assert pesq_worker_children() == pool.worker_pids
    del pool
    assert pesq_worker_children() == []


def test_arguments_are_validated():
    with pytest.raises(ValueError, match="'wb' at 16000 Hz"):
        PesqPool(0, sample_rate=8000, mode="wb")
    with pytest.raises(ValueError, match="got -1"):
        PesqPool(-1)
    with pytest.raises(ValueError, match="differ in shape"):
        PesqPool(0).submit(torch.zeros(1, 1, 4000), torch.zeros(1, 1, 4001))
    assert default_worker_count(local_world_size=10**6) == 1
    assert default_worker_count() == len(os.sched_getaffinity(0))
