"""Rules on MetricGAN+'s replay buffer: the metric discriminator relearns past enhanced clips from it, so that it does
not forget the scores of the generator's earlier outputs (REPLAY_BUFFER_STALLED)."""

from __future__ import annotations

import math

from codecgan.diagnosis import tags
from codecgan.diagnosis.findings import Finding, position
from codecgan.diagnosis.history import MetricHistory
from codecgan.diagnosis.trends import first_sustained, settle

# MetricGAN+ writes each epoch's enhanced clips to its history and replays a fifth of it the next epoch: the first
# epoch may end with an empty buffer, every later one should hold items and have replayed some.
REPLAY_WARMUP_EPOCHS = 1
REPLAY_PATIENCE = 2  # epochs


def replay_buffer_stalled(history: MetricHistory, patience: int = REPLAY_PATIENCE) -> Finding | None:
    """REPLAY_BUFFER_STALLED: after the first epoch, MetricGAN+'s replay buffer ends `patience` consecutive epochs
    empty, or holding items of which none was replayed during the epoch.

    Reads the per-epoch ``diag/replay_buffer_items_epoch`` (the buffer's items at the epoch's end, all ranks) and
    ``diag/replay_items_epoch`` (items replayed during it); quiet without them (a loop with no replay buffer).
    """
    sizes = [p for p in history.series(tags.REPLAY_BUFFER_ITEMS + tags.EPOCH_SUFFIX) if math.isfinite(p.value)]
    if not sizes:
        return None
    replayed = history.aligned(tags.REPLAY_ITEMS + tags.EPOCH_SUFFIX, sizes)
    first_epoch = sizes[0].epoch or 0

    def stalled(index: int) -> str | None:
        point, count = sizes[index], replayed[index]
        if (point.epoch if point.epoch is not None else index) - first_epoch < REPLAY_WARMUP_EPOCHS:
            return None
        if point.value <= 0:
            return "empty"
        if count is not None and count <= 0:
            return "unused"
        return None

    kinds = [stalled(i) for i in range(len(sizes))]
    flags = [kind is not None for kind in kinds]
    index = first_sustained(flags, patience)
    if index is None:
        return None
    first, last = sizes[index], sizes[-1]
    values = {
        "kind": kinds[index],
        "patience": patience,
        "first": position(first),
        "size": first.value,
        "replayed": replayed[index],
        "largest_size": max(p.value for p in sizes),
        "last_size": last.value,
        "last_replayed": replayed[-1],
        "last": position(last),
    }
    finding = Finding("REPLAY_BUFFER_STALLED", "warning", first.step, first.epoch, values)
    return settle(finding, sizes, flags, patience)
