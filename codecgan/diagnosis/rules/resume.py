"""RESUME_DISCONTINUITY: a resumed run whose losses, learning rates or discriminator schedule jump at the resume step.

codecgan's resume is exact (tests/test_resume.py: a run resumed at step N equals a straight run bitwise), so the
logged values just after a resume continue the trend just before it. A jump far beyond the series' noise means the
resumed run is not the run that was saved: a learning rate or scheduler reset (the config changed, or the scheduler
state was not loaded), an optimizer whose state was dropped (a checkpoint loaded as weights only), a discriminator
warm-up or update period that restarted (TensorSpeech/TensorFlowTTS#409: a wrong D step offset after resuming at
900k; evonneng/learning2listen#9: fm_loss jumps). Resume points come from `diag/resumed_at_step` (ResumeContinuity).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from codecgan.diagnosis import tags
from codecgan.diagnosis.findings import Finding, position
from codecgan.diagnosis.history import MetricHistory, Point
from codecgan.diagnosis.trends import median

# A jump is a discontinuity when it exceeds RESUME_K times the series' noise. For batch-to-batch noise the noise is
# the median absolute deviation of the logging-point-to-logging-point differences over the trailing window: about
# 0.95σ for Gaussian noise of deviation σ, while the jump (a median of RESUME_AFTER points against a level from
# RESUME_LEVEL_POINTS points) has a deviation under σ, so 6× is about 6 of its standard deviations. For a smooth,
# curving series (a tiny model's first hundred steps) it is how far the same straight trend missed at the earlier
# points of the window: judged as if resumed at step 20, the straight run of the tiny codec departs 8.6× the MAD of
# its differences in train/loss_adv, and 3.5× that larger noise.
RESUME_K = 6.0
# Logging points before the resume that define the trend and the noise (since the previous resume, if later).
RESUME_WINDOW = 20
# The level just before the resume: the median of the last few points, each carried along the trend to the last one.
RESUME_LEVEL_POINTS = 5
# Logging points after the resume whose median is compared with the trend: one outlier batch is not a jump.
RESUME_AFTER = 3
# The fewest points before the resume that make a judgement: a trend needs RESUME_LEVEL_POINTS, and each earlier
# departure RESUME_AFTER more; three departures make a median. With fewer, nothing is judged.
RESUME_MIN_BEFORE = RESUME_LEVEL_POINTS + RESUME_AFTER + 2
# The noise never counts as less than 1% of the level: a learning rate or a discriminator step rate is constant
# between scheduler steps (zero spread), and must move by 6% of its value to count.
RESUME_RELATIVE_FLOOR = 0.01
RESUME_ABSOLUTE_FLOOR = 1e-12
# Besides every train/loss* term: the learning rates, and the discriminator's schedule (the fraction of batches on
# which it stepped, and how far its weights moved per step).
RESUME_EXTRA_TAGS = (tags.TRAIN_LR_G, tags.TRAIN_LR_D, tags.D_STEP_RATE, tags.D_UPDATE_RATIO)
# A jump in one of these makes a warning; a jump in a loss term alone is info. Treating each of the 48 judged logging
# points of a healthy 300-step tiny codec as a resume, loss terms jumped at 5 (the codebook commitment loss leaping
# for a few points, the adversarial and mel terms at the knee where their first fall ends) and these at none.
RESUME_WARNING_TAGS = (tags.TRAIN_LOSS_G, tags.TRAIN_LOSS_D) + RESUME_EXTRA_TAGS
JUMPS_LISTED = 4


@dataclass(frozen=True)
class ResumeJump:
    """One series at one resume: `before` is its trend's value at the first point after the resume, `after` the
    median of the first RESUME_AFTER points from the resume on, `jump` the median of their differences from the trend
    (each at its own step), `noise` the spread the jump is measured in, `largest_earlier` the largest departure of the
    same kind at the earlier points of the window, `points_before` how many points the trend rests on."""

    tag: str
    resume_step: int
    before: float
    after: float
    jump: float
    noise: float
    largest_earlier: float
    points_before: int

    @property
    def size(self) -> float:
        """The jump in units of the noise."""
        return abs(self.jump) / self.noise

    def is_discontinuity(self, k: float = RESUME_K) -> bool:
        """Larger than `k` × the noise, and than every departure the series made on its own within the window (a
        codebook's commitment loss, say, leaps for a few logging points now and then in a healthy run)."""
        return self.size > k and abs(self.jump) > self.largest_earlier


def resume_points(history: MetricHistory) -> list[Point]:
    """The recorded resumes in step order, one per step; the value of `diag/resumed_at_step` is the resume step."""
    by_step = {int(p.value): p for p in history.series(tags.RESUMED_AT_STEP) if math.isfinite(p.value)}
    return [by_step[step] for step in sorted(by_step)]


def _slope(points: Sequence[Point]) -> float:
    """Theil–Sen slope of value against step: one outlier cannot tilt the trend."""
    slopes = [
        (b.value - a.value) / (b.step - a.step)
        for i, a in enumerate(points)
        for b in points[i + 1 :]
        if b.step > a.step
    ]
    return median(slopes) if slopes else 0.0


def _trend(before: Sequence[Point]) -> tuple[Point, float, float]:
    """(the last point, the trend's value there, its slope per step): the Theil–Sen line through `before`, anchored at
    the median of its last RESUME_LEVEL_POINTS points carried along it to the last one."""
    slope, last = _slope(before), before[-1]
    level = median([p.value + slope * (last.step - p.step) for p in before[-RESUME_LEVEL_POINTS:]])
    return last, level, slope


def _departure(before: Sequence[Point], after: Sequence[Point]) -> float:
    """The median difference of the `after` points from the trend of the `before` points, each at its own step."""
    last, level, slope = _trend(before)
    return median([p.value - (level + slope * (p.step - last.step)) for p in after])


def series_jump(tag: str, points: Sequence[Point], resume_step: int, since_step: int = -1) -> ResumeJump | None:
    """The jump of one series (finite points with steps, in step order) at `resume_step`; None when there are fewer
    than RESUME_MIN_BEFORE points in [since_step, resume_step) or fewer than RESUME_AFTER from resume_step on.

    The jump is the median departure of the first RESUME_AFTER points after the resume from the trend of the last
    RESUME_WINDOW points before it. The noise is the larger of the MAD of those points' differences (batch-to-batch
    noise) and the median departure of the same trend at each earlier point of the window where it can be measured
    (a curving series, such as a tiny model's first steps, departs from any straight trend without noise), at least
    RESUME_RELATIVE_FLOOR of the level.
    """
    before = [p for p in points if since_step <= p.step < resume_step][-RESUME_WINDOW:]
    after = [p for p in points if p.step >= resume_step][:RESUME_AFTER]
    if len(before) < RESUME_MIN_BEFORE or len(after) < RESUME_AFTER:
        return None
    last, level, slope = _trend(before)
    differences = [b.value - a.value for a, b in zip(before, before[1:])]
    center = median(differences)
    spread = median([abs(d - center) for d in differences])
    earlier = [
        abs(_departure(before[:split], before[split : split + RESUME_AFTER]))
        for split in range(RESUME_LEVEL_POINTS, len(before) - RESUME_AFTER + 1)
    ]
    curvature = median(earlier) if earlier else 0.0
    noise = max(spread, curvature, RESUME_RELATIVE_FLOOR * abs(level), RESUME_ABSOLUTE_FLOOR)
    jump = _departure(before, after)
    expected = level + slope * (after[0].step - last.step)
    after_value = median([p.value for p in after])
    return ResumeJump(tag, resume_step, expected, after_value, jump, noise, max(earlier, default=0.0), len(before))


def watched_series(history: MetricHistory) -> dict[str, list[Point]]:
    """The series a resume must continue: every train/loss* term, the learning rates, the discriminator's schedule."""
    losses = [t for t in history.tags_with_prefix(tags.TRAIN_LOSS_PREFIX) if not t.endswith("_epoch")]
    series = {}
    # Epoch means are left out: a resume mid-epoch averages a partial epoch.
    for tag in dict.fromkeys(losses + [t for t in RESUME_EXTRA_TAGS if history.has(t)]):
        points = [p for p in history.series(tag) if p.step is not None and math.isfinite(p.value)]
        series[tag.removesuffix("_step")] = sorted(points, key=lambda p: p.step)
    return series


def resume_jumps(
    history: MetricHistory, resume_steps: Sequence[int] | None = None, k: float = RESUME_K
) -> list[ResumeJump]:
    """Every series' discontinuity (`ResumeJump.is_discontinuity`) at each recorded resume, or only at `resume_steps`,
    ordered by resume step and then by size."""
    resumes = [int(p.value) for p in resume_points(history)]
    series = watched_series(history)
    jumps = []
    for index, step in enumerate(resumes):
        if resume_steps is not None and step not in resume_steps:
            continue
        since = resumes[index - 1] if index else -1
        found = [jump for tag, points in series.items() if (jump := series_jump(tag, points, step, since))]
        jumps += sorted((jump for jump in found if jump.is_discontinuity(k)), key=lambda jump: -jump.size)
    return jumps


def _resume_values(resume: Point, jumps: Sequence[ResumeJump]) -> dict[str, Any]:
    """One resume's part of the finding's values: where it was and its jumps, largest first (the first JUMPS_LISTED of
    them, and how many there were)."""
    listed = [
        {
            "tag": jump.tag,
            "before": jump.before,
            "after": jump.after,
            "jump": jump.jump,
            "size": jump.size,
            "noise": jump.noise,
            "largest_earlier": jump.largest_earlier,
            "points_before": jump.points_before,
        }
        for jump in jumps[:JUMPS_LISTED]
    ]
    return {"resume_step": int(resume.value), "at": position(resume), "jump_count": len(jumps), "jumps": listed}


def resume_discontinuity(
    history: MetricHistory, resume_steps: Sequence[int] | None = None, k: float = RESUME_K
) -> Finding | None:
    """RESUME_DISCONTINUITY: at a recorded resume, a loss, a learning rate or the discriminator's schedule jumped by
    more than `k` × its noise and more than it departed on its own earlier in the window (`ResumeJump`), comparing
    the median of the first RESUME_AFTER points after the resume with the trend before it.

    A warning, at the first resume where a series of RESUME_WARNING_TAGS jumped; info when only loss terms did (the
    totals continued). `resume_steps` limits the judgement to those resumes (the live callback judges its own).
    """
    jumps = resume_jumps(history, resume_steps, k)
    if not jumps:
        return None
    resumes = {int(p.value): p for p in resume_points(history)}
    broken = sorted({jump.resume_step for jump in jumps})
    warned = sorted({jump.resume_step for jump in jumps if jump.tag in RESUME_WARNING_TAGS})
    values = {
        "resumes": [
            _resume_values(resumes[step], [jump for jump in jumps if jump.resume_step == step]) for step in broken
        ],
        "k": k,
        "window": RESUME_WINDOW,
        "relative_floor": RESUME_RELATIVE_FLOOR,
        "after_points": RESUME_AFTER,
        "smooth_steps": sorted(set(resumes) - set(broken)) if resume_steps is None else [],
        "warning_steps": warned,
    }
    first = resumes[(warned or broken)[0]]
    severity = "warning" if warned else "info"
    return Finding("RESUME_DISCONTINUITY", severity, int(first.value), first.epoch, values)
