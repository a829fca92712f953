"""LR_VANISHED, DATA_LEAK and LOSS_SPIKE on scripted metric trajectories: each failure, and the near misses that
must stay quiet (a StepLR halving, a cosine reaching 0 on the last rounds, a warm-up, a slow drift)."""

from __future__ import annotations

import math
import random
import time

import pytest

from codecgan.diagnosis import MetricHistory
from codecgan.diagnosis.registry import RULES, run_rules
from codecgan.diagnosis.rules.schedule_and_data import find_spikes, loss_series

NEW_CODES = {"LR_VANISHED", "DATA_LEAK", "LOSS_SPIKE"}


def test_the_new_codes_are_registered() -> None:
    assert NEW_CODES <= set(RULES)


# ---------------------------------------------------------------------------------------------------- LR_VANISHED
def schedule_history(
    lr_at, metric: str, metric_at, last_step: int, log_every: int, val_every: int, tag: str = "train/lr_g"
) -> MetricHistory:
    """The learning rate logged every `log_every` steps and the metric every `val_every` steps (epoch = round)."""
    history = MetricHistory()
    for step in range(log_every - 1, last_step + 1, log_every):
        history.add(tag, lr_at(step), step=step, epoch=step // val_every)
    for round_index, step in enumerate(range(val_every, last_step + 1, val_every)):
        history.add(metric, metric_at(round_index), step=step, epoch=round_index)
    return history


def exponential(gamma: float, peak: float = 1e-4):
    return lambda step: peak * gamma**step


def step_halving(steps_per_epoch: int, every_epochs: int = 30, peak: float = 5e-4):
    return lambda step: peak * 0.5 ** ((step // steps_per_epoch) // every_epochs)


def cosine(total: int, peak: float = 2e-4):
    return lambda step: 0.5 * peak * (1 + math.cos(math.pi * min(step, total) / total))


def improving_until(round_index: int, start: float = 3.0, rate: float = 0.05):
    """A mel distance falling 5% per round until `round_index`, flat (to 1e-6) after it."""
    return lambda r: start * (1 - rate) ** min(r, round_index) + 1e-6 * (r % 2)


LR_CASES = [
    # (name, history, expected first step or None when nothing above info may be reported)
    # coqui-ai/TTS#1003: ExponentialLR(0.999) per step, 7e-111 of the peak at step 244k, no progress since ~step 8k.
    (
        "exponential-0.999-244k-steps",
        schedule_history(exponential(0.999), "val/loss_mel", improving_until(1), 244_000, 1000, 4000),
        20_000,  # under 1e-3 of the first logged value (step 999) from round 8k; 12k, 16k, 20k did not improve on it
    ),
    # CMGAN: StepLR halving every 30 epochs over its 120 (1/8 at the end) while PESQ levels off: a schedule, no finding.
    (
        "steplr-halving-120-epochs",
        schedule_history(step_halving(100), "val/pesq", lambda r: min(3.0, 2.0 + 0.05 * r), 12_000, 50, 100),
        None,
    ),
    # A cosine schedule reaching 0 at the last step of a run that improved to the end.
    (
        "cosine-to-zero-still-improving",
        schedule_history(cosine(10_000), "val/pesq", lambda r: 2.0 + 0.03 * r, 10_000, 50, 100),
        None,
    ),
    # The same decay on the discriminator alone: its learning rate vanished, SNR stalls.
    (
        "discriminator-exponential",
        schedule_history(exponential(0.99), "val/snr_db", lambda r: 5.0, 4000, 50, 200, tag="train/lr_d"),
        1400,  # under 1e-3 of the peak from round 800 (the reference); 1000, 1200, 1400 did not improve on it
    ),
    # A learning rate set under the absolute floor from the start.
    (
        "absolute-floor",
        schedule_history(lambda step: 1e-9, "val/pesq", lambda r: 1.5, 1000, 10, 100),
        400,
    ),
    # A discriminator learning rate of 0 (the zoo's frozen_discriminator) is under the floor too.
    (
        "zero-from-the-start",
        schedule_history(lambda step: 0.0, "val/loss_mel", lambda r: 3.0, 1000, 10, 100, tag="train/lr_d"),
        400,
    ),
    # Vanished for only 2 rounds before the run ends: too few to call it a stall.
    ("too-few-rounds", schedule_history(exponential(0.9), "val/pesq", lambda r: 1.5, 300, 10, 100), None),
]


@pytest.mark.parametrize(("name", "built", "first_step"), LR_CASES, ids=[case[0] for case in LR_CASES])
def test_lr_vanished_on_scripted_schedules(name: str, built: MetricHistory, first_step: int | None) -> None:
    finding = RULES["LR_VANISHED"](built)
    if first_step is None:
        assert finding is None or finding.severity == "info", finding
        return
    assert finding is not None and finding.severity == "warning", finding
    assert finding.first_step == first_step
    assert finding.evidence.endswith(".") and finding.suggestion.endswith(".")


def test_lr_vanished_names_the_numbers_of_the_user_report() -> None:
    built = schedule_history(exponential(0.999), "val/loss_mel", improving_until(1), 244_000, 1000, 4000)
    finding = RULES["LR_VANISHED"](built)
    assert "train/lr_g was 3.3e-08 at epoch 1 (step 8000), 0.00091 of its peak 3.7e-05" in finding.evidence
    assert "the latest train/lr_g is 9.5e-111" in finding.evidence
    assert "val/loss_mel did not improve on its best 2.85" in finding.evidence


def test_lr_vanished_reads_pesq_before_the_mel_distance_and_snr() -> None:
    built = schedule_history(exponential(0.99), "val/pesq", lambda r: 2.0 + 0.1 * r, 4000, 50, 200)
    for round_index, step in enumerate(range(200, 4001, 200)):  # SNR flat, PESQ improving: quality improves
        built.add("val/snr_db", 5.0, step=step, epoch=round_index)
    assert RULES["LR_VANISHED"](built) is None


def test_lr_restored_after_vanishing_is_reported_as_info() -> None:
    restart = 2400  # a warm restart: the peak learning rate again, and the metric improves
    built = schedule_history(
        lambda s: 1e-4 * 0.99 ** (s if s < restart else s - restart),
        "val/snr_db",
        lambda r: 5.0 if r < 12 else 5.0 + (r - 11),
        4000,
        50,
        200,
    )
    finding = RULES["LR_VANISHED"](built)
    assert finding is not None and finding.severity == "info" and "not since" in finding.evidence


# ------------------------------------------------------------------------------------------------------ DATA_LEAK
def counts(leaked: list[float], shared: list[float]) -> MetricHistory:
    history = MetricHistory()
    for index, (files, val_test) in enumerate(zip(leaked, shared)):
        history.add("diag/data_leak_files", files, step=1000 * index, epoch=index)
        history.add("diag/val_test_shared_files", val_test, step=1000 * index, epoch=index)
    return history


@pytest.mark.parametrize(
    ("leaked", "shared", "severity", "words"),
    [
        ([3.0], [0.0], "warning", "3 validation or test files are also training data"),
        ([0.0], [824.0], "warning", "824 validation files are also test data"),
        ([2.0], [5.0], "warning", "2 validation or test files are also training data"),
        ([0.0], [0.0], None, ""),
        ([4.0, 0.0], [0.0, 0.0], "info", "the latest start counted none"),
    ],
    ids=["training-files", "val-is-test", "both", "clean", "fixed-on-resume"],
)
def test_data_leak_reads_the_counts_logged_at_start(
    leaked: list[float], shared: list[float], severity: str | None, words: str
) -> None:
    finding = RULES["DATA_LEAK"](counts(leaked, shared))
    if severity is None:
        assert finding is None
        return
    assert finding is not None and finding.severity == severity and words in finding.evidence, finding


def test_data_leak_names_the_examples_it_is_given() -> None:
    finding = RULES["DATA_LEAK"](counts([1.0], [0.0]), examples=["val a.wav is training file train/b.wav"])
    assert "Examples: val a.wav is training file train/b.wav." in finding.evidence


def test_a_run_without_folders_has_no_data_leak_finding() -> None:
    assert RULES["DATA_LEAK"](MetricHistory()) is None


# ----------------------------------------------------------------------------------------------------- LOSS_SPIKE
def noisy(n: int, level: float = 1.0, noise: float = 0.03, seed: int = 0) -> list[float]:
    rng = random.Random(seed)
    return [level + rng.gauss(0.0, noise) for _ in range(n)]


def with_spikes(values: list[float], at: list[int], factor: float = 20.0, width: int = 1) -> list[float]:
    values = list(values)
    for index in at:
        for offset in range(width):
            values[index + offset] *= factor
    return values


def losses(log_every: int = 10, **series: list[float]) -> MetricHistory:
    """One point per logging step; keyword names use '__' for '/' (train__loss_g -> train/loss_g)."""
    history = MetricHistory()
    for name, values in series.items():
        for index, value in enumerate(values):
            step = log_every * (index + 1)
            history.add(name.replace("__", "/"), value, step=step, epoch=step // 500)
    return history


WARMUP = [30.0 * math.exp(-i / 15) + 3.0 + 0.05 * math.sin(i) for i in range(150)]
SPIKE_CASES = [
    # (name, history, severity or None, first step or None)
    ("one-spike-is-info", losses(train__loss_g=with_spikes(noisy(120), [60])), "info", 610),
    ("three-spikes-warn", losses(train__loss_g=with_spikes(noisy(150), [40, 80, 120])), "warning", 1210),
    # One term's jumps (a codec's loss_vq as its codebooks shift) are info however many: the totals hold.
    ("three-spikes-of-one-term-info", losses(train__loss_fm=with_spikes(noisy(150), [40, 80, 120])), "info", 410),
    ("two-point-spike", losses(train__loss_d=with_spikes(noisy(120), [60], width=2)), "info", 610),
    # AcademiCodec#27: a feature loss of 55178 on a loss around 3.
    ("academicodec-55178", losses(train__loss_fm=with_spikes(noisy(100, 3.0, 0.2), [70], 18_000)), "info", 710),
    (
        "same-step-in-two-terms-is-one",
        losses(train__loss_g=with_spikes(noisy(120), [60, 90]), train__loss_mel=with_spikes(noisy(120, 2.0), [60, 90])),
        "info",
        610,
    ),
    ("warm-up-decrease", losses(train__loss_g=WARMUP), None, None),
    ("slow-drift-up", losses(train__loss_d=[1.0 + 0.01 * i + n for i, n in enumerate(noisy(200, 0.0))]), None, None),
    ("level-shift-stays-up", losses(train__loss_g=noisy(60) + noisy(60, 5.0, seed=1)), None, None),
    ("spike-at-the-end-not-back-yet", losses(train__loss_g=with_spikes(noisy(60), [59])), None, None),
    ("lr-is-not-a-loss", losses(train__lr_g=with_spikes(noisy(120), [40, 60, 80])), None, None),
]


@pytest.mark.parametrize(("name", "built", "severity", "first_step"), SPIKE_CASES, ids=[c[0] for c in SPIKE_CASES])
def test_loss_spike_on_scripted_losses(
    name: str, built: MetricHistory, severity: str | None, first_step: int | None
) -> None:
    finding = RULES["LOSS_SPIKE"](built)
    if severity is None:
        assert finding is None, finding
        return
    assert finding is not None and finding.severity == severity, finding
    assert finding.first_step == first_step
    assert finding.evidence.endswith(".") and finding.suggestion.endswith(".")


def test_judging_only_the_newest_points_finds_the_spikes_of_a_full_pass() -> None:
    values = with_spikes(noisy(300, 2.0, 0.1), [30, 31, 90, 200])
    [(tag, points)] = loss_series(losses(train__loss_g=values)).items()
    full = find_spikes(tag, points)
    seen = {}
    for end in range(1, len(points) + 1):  # what a live callback judges after each logging step
        for spike in find_spikes(tag, points[:end], start=end - 4):
            seen.setdefault(spike.point.step, spike)
    assert [s.point.step for s in full] == sorted(seen) == [310, 910, 2010]


def test_gaussian_noise_over_a_long_run_has_no_spike_and_is_read_quickly() -> None:
    built = losses(**{f"train__loss_{i}": noisy(5000, seed=i) for i in range(6)})  # 250k steps logged every 50
    start = time.perf_counter()
    assert run_rules(built) == []
    assert time.perf_counter() - start < 5.0  # measured: 0.2-0.7 s on a shared 2-core VM
