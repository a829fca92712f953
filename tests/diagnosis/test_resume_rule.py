"""RESUME_DISCONTINUITY on scripted histories: a resume that continues its trend is quiet; a loss jump, a learning-rate
reset or a restarted discriminator schedule at the resume step is a warning; too few points either side say nothing."""

from __future__ import annotations

import math
import random

import pytest

from codecgan.diagnosis.history import MetricHistory
from codecgan.diagnosis.registry import RULES
from codecgan.diagnosis.rules.resume import RESUME_MIN_BEFORE, resume_discontinuity, resume_jumps

EVERY = 10  # logging interval in batches
INITIAL_LR = 3e-4


def run_history(
    resumes: tuple[int, ...] = (400,),
    steps: int = 800,
    loss_factor: float = 1.0,
    lr_reset: bool = False,
    d_warmup_restart: bool = False,
    broken_at: int | None = None,
    seed: int = 0,
) -> MetricHistory:
    """A codec-like run logged every 10 batches: noisy falling losses, an ExponentialLR(0.999) generator learning rate,
    a constant discriminator one, the discriminator stepping on every batch; resumed at `resumes`. The faults start
    at `broken_at` (default: the last resume)."""
    rng = random.Random(seed)
    broken_at = resumes[-1] if broken_at is None else broken_at
    history = MetricHistory()
    for step in range(EVERY - 1, steps, EVERY):  # Lightning logs at steps 9, 19, ...
        broken = step >= broken_at
        mel = 1.5 + 2.0 * math.exp(-step / 300) + rng.gauss(0, 0.05)
        adversarial = 2.5 + rng.gauss(0, 0.1)
        mel *= loss_factor if broken else 1.0
        history.add("train/loss_mel", mel, step, step // 160)
        history.add("train/loss_adv", adversarial, step, step // 160)
        history.add("train/loss_g", mel + adversarial, step, step // 160)
        history.add("train/loss_d", 2.0 + rng.gauss(0, 0.08), step, step // 160)
        lr = INITIAL_LR if (lr_reset and broken) else INITIAL_LR * 0.999 ** (step + 1)
        history.add("train/lr_g", lr, step, step // 160)
        history.add("train/lr_d", INITIAL_LR, step, step // 160)
        history.add("diag/d_step_rate", 0.0 if (d_warmup_restart and broken) else 1.0, step, step // 160)
    for step in resumes:
        history.add("diag/resumed_at_step", step, step, step // 160)
    return history


def test_registered() -> None:
    assert RULES["RESUME_DISCONTINUITY"] is resume_discontinuity


@pytest.mark.parametrize("seed", range(20))
def test_a_smooth_resume_is_quiet(seed: int) -> None:
    assert resume_discontinuity(run_history(seed=seed)) is None


def test_a_run_without_a_recorded_resume_is_not_judged() -> None:
    assert resume_discontinuity(run_history(resumes=(), broken_at=400, loss_factor=3.0)) is None


@pytest.mark.parametrize(
    ("fault", "tag"),
    [
        ({"loss_factor": 3.0}, "train/loss_mel"),
        ({"lr_reset": True}, "train/lr_g"),
        ({"d_warmup_restart": True}, "diag/d_step_rate"),
    ],
    ids=["loss x3", "lr reset to its initial value", "discriminator warm-up restarted"],
)
def test_a_jump_at_the_resume_is_a_warning(fault: dict, tag: str) -> None:
    history = run_history(**fault)
    finding = resume_discontinuity(history)
    assert finding is not None and finding.severity == "warning"
    assert finding.first_step == 400 and finding.first_epoch == 2
    assert finding.evidence.startswith("At the resume at epoch 2 (step 400), ")
    assert tag in finding.evidence
    jumps = {jump.tag: jump for jump in resume_jumps(history)}
    assert jumps[tag].size > 6 and jumps[tag].resume_step == 400


def test_the_evidence_quotes_the_values_and_the_noise() -> None:
    [jump] = [j for j in resume_jumps(run_history(lr_reset=True)) if j.tag == "train/lr_g"]
    # The straight trend at step 409, within 0.5% of the exponential decay it follows.
    assert jump.before == pytest.approx(INITIAL_LR * 0.999**410, rel=5e-3)
    assert jump.after == INITIAL_LR
    assert jump.noise == pytest.approx(0.01 * INITIAL_LR * 0.999**400, rel=0.02)  # 1% of the level
    finding = resume_discontinuity(run_history(lr_reset=True))
    assert f"train/lr_g went from {jump.before:.4g} (its trend) to 0.0003, a jump of +" in finding.evidence
    assert f"{jump.size:.3g}× its noise {jump.noise:.2g}" in finding.evidence


@pytest.mark.parametrize(
    ("resume", "steps"),
    [(EVERY * (RESUME_MIN_BEFORE - 1), 800), (400, 400 + 2 * EVERY)],
    ids=["too few points before", "too few points after"],
)
def test_too_few_points_say_nothing(resume: int, steps: int) -> None:
    assert resume_discontinuity(run_history(resumes=(resume,), steps=steps, loss_factor=3.0)) is None
    # One more point on the short side is enough.
    longer = run_history(resumes=(resume + EVERY,) if steps == 800 else (resume,), steps=steps + EVERY, loss_factor=3.0)
    assert resume_discontinuity(longer) is not None


def test_a_fast_curved_fall_without_noise_is_its_trend() -> None:
    """A tiny model's first steps: a smooth loss falling faster and faster departs from any straight trend; the
    departures of the same trend earlier in the window set the noise, so a resume there is quiet."""
    history = MetricHistory()
    for index, step in enumerate(range(1, 60, 2)):
        history.add("train/loss_adv", 4.7 - 0.0015 * index**2.6, step, 0)
    history.add("diag/resumed_at_step", 21, 21, 0)
    assert resume_discontinuity(history) is None


def test_several_resumes_are_judged_each_against_the_points_since_the_previous() -> None:
    history = run_history(resumes=(200, 500), loss_factor=3.0)
    finding = resume_discontinuity(history)
    assert finding.first_step == 500
    assert "The resume at step 200 continued smoothly." in finding.evidence
    # The live callback judges only its own resume.
    assert resume_discontinuity(history, resume_steps=[200]) is None
    assert resume_discontinuity(history, resume_steps=[500]).first_step == 500


def term_history(jump_at_resume: float, earlier_leap: float = 0.0) -> MetricHistory:
    """loss_g noisy and continuous; loss_vq (a term) × `jump_at_resume` from the resume at step 300, and
    × `earlier_leap` for three points at steps 200-220 when given."""
    rng, history = random.Random(1), MetricHistory()
    for step in range(9, 400, EVERY):
        vq = 2.0 + rng.gauss(0, 0.05)
        vq *= jump_at_resume if step >= 300 else (earlier_leap if earlier_leap and 200 <= step < 230 else 1.0)
        history.add("train/loss_vq", vq, step, 0)
        history.add("train/loss_g", 60.0 + rng.gauss(0, 5.0), step, 0)
    history.add("diag/resumed_at_step", 300, 300, 0)
    return history


def test_a_jump_in_a_loss_term_alone_is_info() -> None:
    finding = resume_discontinuity(term_history(jump_at_resume=3.0))
    assert finding.severity == "info" and finding.first_step == 300
    assert "train/loss_vq went from" in finding.evidence
    assert "Only loss terms jumped, not the total losses" in finding.evidence


def test_a_series_that_leapt_as_far_on_its_own_before_the_resume_is_quiet() -> None:
    assert resume_discontinuity(term_history(jump_at_resume=3.0, earlier_leap=4.0)) is None
