"""The wording of the findings of `codecgan.diagnosis.rules.schedule_and_data`."""

from __future__ import annotations

from typing import Any, Mapping

from codecgan.diagnosis.wording.phrases import where


def lr_vanished(v: Mapping[str, Any]) -> tuple[str, str]:
    tag, metric, peak = v["tag"], v["metric"], v["peak"]
    relative = f"{v['lr'] / peak:.2g} of its peak {peak:.2g}" if peak > 0 else "never higher"
    evidence = (
        f"{tag} was {v['lr']:.2g} at {where(v['lr_at'])}, {relative} "
        f"(vanished: under {v['vanished_fraction']:g} of the peak or under {v['floor']:g}), and {metric} did not "
        f"improve on its best {v['best']:.4g} ({where(v['best_at'])}) in the {v['stall_rounds']} validation "
        f"rounds after that ({', '.join(f'{value:.4g}' for value in v['stalled'])}, the last at {where(v['first'])}); "
        f"the latest {tag} is {v['latest_lr']:.2g}."
    )
    if v["also_vanished"]:
        evidence += f" {', '.join(v['also_vanished'])} had vanished too."
    suggestion = (
        "Check the scheduler's decay per step (ExponentialLR's gamma, StepLR's step_size, a cosine T_max shorter than "
        "the run) and whether it steps per batch or per epoch (model.init_args.scheduler_interval), then resume from "
        f"the last checkpoint with the learning rate restored and check that {metric} improves again."
    )
    return evidence, suggestion


def _files(count: float, noun: str) -> str:
    """'1 validation file is' / '3 validation files are'."""
    return f"{count:.0f} {noun} is" if count == 1 else f"{count:.0f} {noun}s are"


def data_leak(v: Mapping[str, Any]) -> tuple[str, str]:
    parts = []
    if v["leaked_files"] > 0:
        parts.append(
            f"{_files(v['leaked_files'], 'validation or test file')} also training data (the same file, or the same "
            "content under another name), so their scores measure memorisation, not generalisation"
        )
    if v["val_test_shared_files"] > 0:
        parts.append(
            f"{_files(v['val_test_shared_files'], 'validation file')} also test data (the validation folder is the "
            "test folder or shares files with it), so a checkpoint chosen on validation is chosen on the test set"
        )
    if parts:
        examples = v["examples"]
        named = f" Examples: {', '.join(examples)}." if examples else " The text entry diag/data_leak lists examples."
        evidence = f"When fit started at {where(v['latest'])}, " + "; ".join(parts) + "." + named
    else:
        evidence = (
            f"An earlier start of this run counted {v['first_count']:.0f} shared files at {where(v['first'])}; the "
            "latest start counted none, so it is reported as info."
        )
    suggestion = (
        "Make the validation and test folders hold only utterances (ideally speakers) that are not in the training "
        "folder, e.g. hold out VoiceBank speakers p286 and p287 for validation, and keep the test folder for the final "
        "score only; then check that diag/data_leak_files and diag/val_test_shared_files are 0."
    )
    return evidence, suggestion


def _spike(spike: Mapping[str, Any]) -> str:
    tag, peak, baseline = spike["tag"], spike["peak"], spike["baseline"]
    if baseline > 0:
        return f"{tag} {peak:.4g} at {where(spike['at'])} ({peak / baseline:.3g}× its trailing median {baseline:.4g})"
    return f"{tag} {peak:.4g} at {where(spike['at'])} (trailing median {baseline:.4g})"


def loss_spike(v: Mapping[str, Any]) -> tuple[str, str]:
    points, listed = v["spike_points"], v["spikes"]
    more = f" and {v['spike_count'] - len(listed)} more" if v["spike_count"] > len(listed) else ""
    evidence = (
        f"{points} loss spike{'s' if points != 1 else ''} (a logged value above the trailing median + "
        f"{v['k']:g}·MAD of its last {v['window']} points, back under it within {v['recovery']} logging points): "
        f"{'; '.join(_spike(spike) for spike in listed)}{more}."
    )
    if v["total_loss_spike_points"] < v["repeats"]:
        evidence += (
            f" Reported as info: a warning takes spikes of {' or '.join(v['total_loss_tags'])} at {v['repeats']} or "
            "more logging points (one bad batch, or one term's jumps, are not a pattern)."
        )
    suggestion = (
        "Look at the batches of those steps (the training sampler is a pure function of seed, epoch and step) for "
        "clipping, silence or a corrupt file; if the spikes are not tied to the data, clip the gradients "
        "(model.init_args.grad_clip_g / grad_clip_d) or lower the learning rate and check that the spikes stop."
    )
    return evidence, suggestion


WORDING = {
    "LR_VANISHED": lr_vanished,
    "DATA_LEAK": data_leak,
    "LOSS_SPIKE": loss_spike,
}
INFO_NOTES: dict = {}
