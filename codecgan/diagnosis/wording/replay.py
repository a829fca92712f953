"""The wording of the findings of `codecgan.diagnosis.rules.replay`."""

from __future__ import annotations

from typing import Any, Mapping

from codecgan.diagnosis import tags
from codecgan.diagnosis.wording.phrases import where


def replay_buffer_stalled(v: Mapping[str, Any]) -> tuple[str, str]:
    sizes = tags.REPLAY_BUFFER_ITEMS + tags.EPOCH_SUFFIX
    if v["kind"] == "empty":
        state = f"held no items ({sizes} {v['size']:g})"
    else:
        state = f"held {v['size']:g} items of which none was replayed ({tags.REPLAY_ITEMS + tags.EPOCH_SUFFIX} 0)"
    replayed = "" if v["last_replayed"] is None else f" and {v['last_replayed']:g} replayed in that epoch"
    evidence = (
        f"MetricGAN+'s replay buffer {state} at the end of {v['patience']} consecutive epochs by {where(v['first'])}, "
        f"after the first epoch; at {where(v['last'])} it held {v['last_size']:g} items{replayed} (at most "
        f"{v['largest_size']:g} over the run), so the metric discriminator learns only the current generator's clips "
        f"and can forget how it scored earlier ones."
    )
    suggestion = (
        "Check that each epoch's enhanced clips are written to the buffer with their PESQ and that the replay pass "
        f"draws from it (a fifth of the history per epoch in MetricGAN+); {sizes} should grow from the second epoch."
    )
    return evidence, suggestion


WORDING = {"REPLAY_BUFFER_STALLED": replay_buffer_stalled}
INFO_NOTES: dict[str, Any] = {}
