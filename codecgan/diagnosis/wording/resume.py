"""The wording of the findings of `codecgan.diagnosis.rules.resume`."""

from __future__ import annotations

from typing import Any, Mapping

from codecgan.diagnosis.wording.phrases import where


def _jump(jump: Mapping[str, Any]) -> str:
    return (
        f"{jump['tag']} went from {jump['before']:.4g} (its trend) to {jump['after']:.4g}, a jump of "
        f"{jump['jump']:+.3g}: {jump['size']:.3g}× its noise {jump['noise']:.2g}"
    )


def _resume(resume: Mapping[str, Any]) -> str:
    listed = resume["jumps"]
    more = f"; and {resume['jump_count'] - len(listed)} more series" if resume["jump_count"] > len(listed) else ""
    return f"At the resume at {where(resume['at'])}, {'; '.join(_jump(jump) for jump in listed)}{more}."


def resume_discontinuity(v: Mapping[str, Any]) -> tuple[str, str]:
    evidence = (
        " ".join(_resume(resume) for resume in v["resumes"])
        + f" A jump counts when it exceeds {v['k']:g}× the noise (the median absolute deviation of the differences "
        f"over up to {v['window']} logging points before the resume, or the typical miss of the same trend earlier in "
        f"them if larger, at least {v['relative_floor']:.0%} of the level) and every departure the series made "
        f"earlier in them, comparing the median of the first {v['after_points']} points after it with the trend; "
        "codecgan's resume is exact, so a resumed run continues its trends."
    )
    smooth = v["smooth_steps"]
    if smooth:
        plural = "s" if len(smooth) > 1 else ""
        evidence += f" The resume{plural} at step {', '.join(map(str, smooth))} continued smoothly."
    if not v["warning_steps"]:
        evidence += (
            " Only loss terms jumped, not the total losses, the learning rates or the discriminator's schedule, and a "
            "term can leap on its own (a codebook's commitment loss, now and then), so it is reported as info."
        )
    suggestion = (
        "Resume with --ckpt_path pointing at a full checkpoint (last.ckpt, not weights only) and the same config as "
        "the saved run: a changed learning rate, scheduler, discriminator_start_step or discriminator_update_period, "
        "or optimizer and scheduler state that was not loaded, restarts them. Then resume again from that checkpoint "
        "and check that the jumped series continue their trends."
    )
    return evidence, suggestion


WORDING = {"RESUME_DISCONTINUITY": resume_discontinuity}
INFO_NOTES: dict = {}
