"""Rules on the health of the run itself: non-finite losses, replicas drifting apart, collapsed codebooks."""

from __future__ import annotations

import math

from codecgan.diagnosis import tags
from codecgan.diagnosis.findings import Finding
from codecgan.diagnosis.history import MetricHistory, Point
from codecgan.diagnosis.trends import first_sustained, percent, settle, where

# DDP broadcasts the initial weights and all-reduces gradients, so replicas are bit-identical; 1e-6 (relative) only
# leaves room for float64 summation order in the checksum itself.
RANK_SPREAD_TOLERANCE = 1e-6

# Skipped non-finite steps in this many logging intervals are no longer an isolated accident.
NONFINITE_REPEATS = 3

# Using under half of log2(K) bits means, for K = 1024, fewer than about 32 equally used codes.
COLLAPSE_ENTROPY_FRACTION = 0.5
COLLAPSE_CRITICAL_FRACTION = 0.2
COLLAPSE_PATIENCE = 2  # windows


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
    what = (
        f"counted {first.value:.0f} non-finite steps" if tag == tags.NONFINITE_LOSS_STEPS else f"became {first.value}"
    )
    evidence = (
        f"{tag} {what} at {where(first)}; {len(hits)} logged values in {len(bad_tags)} tags were not finite "
        f"({', '.join(bad_tags)})."
    )
    repeated = len(skipped) >= NONFINITE_REPEATS or bad_tags != [tags.NONFINITE_LOSS_STEPS]
    if not repeated:
        evidence += (
            f" The loop skipped {'that step' if first.value == 1 else 'those steps'} and went on: a warning while "
            f"skipped steps stay isolated, critical if they come back in {NONFINITE_REPEATS} logging intervals."
        )
    suggestion = (
        "Rerun from the last finite checkpoint with Trainer(detect_anomaly=True) for a few steps to find the first NaN, "
        "and check the precision (bf16-mixed rather than 16-mixed), the learning rates, and every log or sqrt of a "
        "magnitude for a missing epsilon."
    )
    return Finding(
        "NONFINITE_LOSS", "critical" if repeated else "warning", first.step, first.epoch, evidence, suggestion
    )


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
    listed = ", ".join(f"{module} (up to {spread:.2e})" for _, module, spread in hits)
    evidence = (
        f"Parameters differed across DDP ranks from {where(first)}: the relative checksum spread exceeded "
        f"{RANK_SPREAD_TOLERANCE:g} in {listed}, so the replicas no longer train the same model."
    )
    suggestion = (
        "Look for a rank-local change to the weights (an optimizer step or a backward skipped on one rank, a batch "
        "dropped only there, unsynchronised norm buffers), then rerun on 2 processes with "
        "RankConsistency(every_n_steps=1) to find the first step."
    )
    return Finding("RANK_DIVERGENCE", "critical", first.step, first.epoch, evidence, suggestion)


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
    parts = []
    for _, quantizer, fraction, _, _ in hits:
        bits = history.series(tags.CODEBOOK_ENTROPY_PREFIX + quantizer)
        dead = history.series(tags.DEAD_CODES_PREFIX + quantizer)
        detail = [f"{bits[-1].value:.1f} bits"] if bits else []
        detail += [f"{dead[-1].value:.0f} dead codes"] if dead else []
        parts.append(f"quantizer {quantizer} at {percent(fraction)}" + (f" ({', '.join(detail)})" if detail else ""))
    first = hits[0][0]
    severity = "critical" if min(hit[2] for hit in hits) < COLLAPSE_CRITICAL_FRACTION else "warning"
    evidence = (
        f"{len(hits)} quantizer{'s' if len(hits) > 1 else ''} used under {percent(COLLAPSE_ENTROPY_FRACTION)} of the "
        f"codebook's entropy (log2 of its size) for {patience} consecutive windows, first at {where(first)}; "
        f"latest: {'; '.join(parts)}."
    )
    suggestion = (
        "Rerun with k-means codebook initialisation or dead-code replacement (or a lower commitment weight) and check "
        f"that {tags.CODEBOOK_ENTROPY_FRACTION_PREFIX}<q> rises above {COLLAPSE_ENTROPY_FRACTION:g}."
    )
    finding = Finding("CODEBOOK_COLLAPSE", severity, first.step, first.epoch, evidence, suggestion)
    still = [hit for hit in hits if len(hit[4]) >= patience and all(hit[4][-patience:])]
    return finding if still else settle(finding, hits[0][3], hits[0][4], patience)
