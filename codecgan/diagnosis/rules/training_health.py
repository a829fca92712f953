"""Rules on the health of the run itself: non-finite losses, replicas drifting apart, collapsed codebooks."""

from __future__ import annotations

import math

from codecgan.diagnosis import tags
from codecgan.diagnosis.findings import Finding, position
from codecgan.diagnosis.history import MetricHistory, Point
from codecgan.diagnosis.trends import as_info, first_sustained, settle

# DDP broadcasts the initial weights and all-reduces gradients, so replicas are bit-identical; 1e-6 (relative) only
# leaves room for float64 summation order in the checksum itself.
RANK_SPREAD_TOLERANCE = 1e-6

# Skipped non-finite steps in this many logging intervals are no longer an isolated accident.
NONFINITE_REPEATS = 3

# Using under half of log2(K) bits means, for K = 1024, fewer than about 32 equally used codes.
COLLAPSE_ENTROPY_FRACTION = 0.5
COLLAPSE_CRITICAL_FRACTION = 0.2
COLLAPSE_PATIENCE = 2  # windows
# A collapse that is reversing is not the failure: a codec's codebook usage often dips early in training, while the
# encoder's output distribution settles, and then spreads again. Usage that rose in each of the last 2 windows, by 0.1
# of the codebook's entropy or more since its lowest point, is reported as info while it keeps rising.
COLLAPSE_RECOVERY_WINDOWS = 2
COLLAPSE_RECOVERY_RISE = 0.1


def _order(point: Point) -> tuple[int, int]:
    return (point.epoch if point.epoch is not None else -1, point.step if point.step is not None else -1)


def nonfinite_loss(history: MetricHistory) -> Finding | None:
    """NONFINITE_LOSS: a logged training loss that is NaN or infinite, or a non-zero count of non-finite (skipped)
    steps. A warning while the skipped steps are isolated (the loop skips them and training goes on); critical when
    they repeat (in `NONFINITE_REPEATS` logging intervals or more) or a logged loss itself is non-finite (the run
    stopped or its weights are no longer finite)."""
    hits: list[tuple[Point, str]] = []
    for tag in history.tags_with_prefix("train/"):
        hits += [(p, tag) for p in history.series(tag) if not math.isfinite(p.value)]
    skipped = [p for p in history.series(tags.NONFINITE_LOSS_STEPS) if p.value > 0]
    hits += [(p, tags.NONFINITE_LOSS_STEPS) for p in skipped]
    if not hits:
        return None
    first, tag = min(hits, key=lambda hit: _order(hit[0]))
    bad_tags = sorted({t for _, t in hits})
    repeated = len(skipped) >= NONFINITE_REPEATS or bad_tags != [tags.NONFINITE_LOSS_STEPS]
    values = {
        "tag": tag,
        "value": first.value,
        "first": position(first),
        "count": len(hits),
        "tags": bad_tags,
        "skipped_intervals": len(skipped),
        "repeats": NONFINITE_REPEATS,
        "repeated": repeated,
    }
    return Finding("NONFINITE_LOSS", "critical" if repeated else "warning", first.step, first.epoch, values)


def rank_divergence(history: MetricHistory) -> Finding | None:
    """RANK_DIVERGENCE: the relative spread of a parameter checksum across DDP ranks above 1e-6."""
    hits = []
    for tag in history.tags_with_prefix(tags.RANK_PARAM_SPREAD_PREFIX):
        bad = [p for p in history.series(tag) if not p.value <= RANK_SPREAD_TOLERANCE]
        if bad:
            hits.append((bad[0], tag[len(tags.RANK_PARAM_SPREAD_PREFIX) :], max(p.value for p in bad)))
    if not hits:
        return None
    hits.sort(key=lambda hit: _order(hit[0]))
    first = hits[0][0]
    values = {
        "first": position(first),
        "threshold": RANK_SPREAD_TOLERANCE,
        "modules": [{"module": module, "max_spread": spread, "first": position(p)} for p, module, spread in hits],
    }
    return Finding("RANK_DIVERGENCE", "critical", first.step, first.epoch, values)


def codebook_collapse(history: MetricHistory, patience: int = COLLAPSE_PATIENCE) -> Finding | None:
    """CODEBOOK_COLLAPSE: a quantizer using under half of its codebook's entropy for `patience` windows."""
    hits = []
    for tag in history.tags_with_prefix(tags.CODEBOOK_ENTROPY_FRACTION_PREFIX):
        quantizer = tag[len(tags.CODEBOOK_ENTROPY_FRACTION_PREFIX) :]
        points = [p for p in history.series(tag) if math.isfinite(p.value)]
        flags = [p.value < COLLAPSE_ENTROPY_FRACTION for p in points]
        index = first_sustained(flags, patience)
        if index is not None:
            hits.append((points[index], quantizer, points[-1].value, points, flags))
    if not hits:
        return None
    hits.sort(key=lambda hit: (_order(hit[0]), hit[1]))
    quantizers = []
    for point, quantizer, fraction, _, _ in hits:
        bits = history.series(tags.CODEBOOK_ENTROPY_PREFIX + quantizer)
        dead = history.series(tags.DEAD_CODES_PREFIX + quantizer)
        quantizers.append(
            {
                "quantizer": quantizer,
                "first": position(point),
                "entropy_fraction": fraction,
                "entropy_bits": bits[-1].value if bits else None,
                "dead_codes": dead[-1].value if dead else None,
            }
        )
    first = hits[0][0]
    severity = "critical" if min(hit[2] for hit in hits) < COLLAPSE_CRITICAL_FRACTION else "warning"
    values = {
        "threshold": COLLAPSE_ENTROPY_FRACTION,
        "patience": patience,
        "first": position(first),
        "quantizers": quantizers,
    }
    finding = Finding("CODEBOOK_COLLAPSE", severity, first.step, first.epoch, values)
    still = [hit for hit in hits if len(hit[4]) >= patience and all(hit[4][-patience:])]
    if not still:
        return settle(finding, hits[0][3], hits[0][4], patience)
    recoveries = [_recovery(hit[3]) for hit in still]
    if not all(recoveries):
        return finding
    recovering = [{"quantizer": hit[1], **recovery} for hit, recovery in zip(still, recoveries)]
    return as_info(
        finding,
        "codebook_recovering",
        quantizers=recovering,
        windows=COLLAPSE_RECOVERY_WINDOWS,
        rise=COLLAPSE_RECOVERY_RISE,
    )


def _recovery(points: list[Point]) -> dict | None:
    """The lowest entropy fraction (its last occurrence) and the latest, if usage rose in each of the last
    COLLAPSE_RECOVERY_WINDOWS windows and by COLLAPSE_RECOVERY_RISE since that lowest point; else None."""
    values = [p.value for p in points]
    low = min(range(len(values)), key=lambda i: (values[i], -i))
    tail = values[-COLLAPSE_RECOVERY_WINDOWS - 1 :]
    rising = len(values) - low > COLLAPSE_RECOVERY_WINDOWS and all(b > a for a, b in zip(tail, tail[1:]))
    if not rising or values[-1] - values[low] < COLLAPSE_RECOVERY_RISE:
        return None
    return {
        "low": values[low],
        "low_at": position(points[low]),
        "latest": values[-1],
        "latest_at": position(points[-1]),
    }
