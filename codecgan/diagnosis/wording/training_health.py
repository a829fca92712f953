"""The wording of the findings of `codecgan.diagnosis.rules.training_health`."""

from __future__ import annotations

from typing import Any, Mapping

from codecgan.diagnosis import tags
from codecgan.diagnosis.wording.phrases import percent, where


def nonfinite_loss(v: Mapping[str, Any]) -> tuple[str, str]:
    value = v["value"]
    what = f"counted {value:.0f} non-finite steps" if v["tag"] == tags.NONFINITE_LOSS_STEPS else f"became {value}"
    evidence = (
        f"{v['tag']} {what} at {where(v['first'])}; {v['count']} logged values in {len(v['tags'])} tags were not "
        f"finite ({', '.join(v['tags'])})."
    )
    if not v["repeated"]:
        evidence += (
            f" The loop skipped {'that step' if value == 1 else 'those steps'} and went on: a warning while "
            f"skipped steps stay isolated, critical if they come back in {v['repeats']} logging intervals."
        )
    suggestion = (
        "Rerun from the last finite checkpoint with Trainer(detect_anomaly=True) for a few steps to find the first NaN, "
        "and check the precision (bf16-mixed rather than 16-mixed), the learning rates, and every log or sqrt of a "
        "magnitude for a missing epsilon."
    )
    return evidence, suggestion


def rank_divergence(v: Mapping[str, Any]) -> tuple[str, str]:
    listed = ", ".join(f"{m['module']} (up to {m['max_spread']:.2e})" for m in v["modules"])
    evidence = (
        f"Parameters differed across DDP ranks from {where(v['first'])}: the relative checksum spread exceeded "
        f"{v['threshold']:g} in {listed}, so the replicas no longer train the same model."
    )
    suggestion = (
        "Look for a rank-local change to the weights (an optimizer step or a backward skipped on one rank, a batch "
        "dropped only there, unsynchronised norm buffers), then rerun on 2 processes with "
        "RankConsistency(every_n_steps=1) to find the first step."
    )
    return evidence, suggestion


def _quantizer(q: Mapping[str, Any]) -> str:
    detail = [f"{q['entropy_bits']:.1f} bits"] if q["entropy_bits"] is not None else []
    detail += [f"{q['dead_codes']:.0f} dead codes"] if q["dead_codes"] is not None else []
    return f"quantizer {q['quantizer']} at {percent(q['entropy_fraction'])}" + (
        f" ({', '.join(detail)})" if detail else ""
    )


def codebook_collapse(v: Mapping[str, Any]) -> tuple[str, str]:
    count = len(v["quantizers"])
    evidence = (
        f"{count} quantizer{'s' if count > 1 else ''} used under {percent(v['threshold'])} of the codebook's entropy "
        f"(log2 of its size) for {v['patience']} consecutive windows, first at {where(v['first'])}; latest: "
        f"{'; '.join(_quantizer(q) for q in v['quantizers'])}."
    )
    suggestion = (
        "Rerun with k-means codebook initialisation or dead-code replacement (or a lower commitment weight) and check "
        f"that {tags.CODEBOOK_ENTROPY_FRACTION_PREFIX}<q> rises above {v['threshold']:g}."
    )
    return evidence, suggestion


def codebook_recovering(note: Mapping[str, Any]) -> str:
    rises = "; ".join(
        f"quantizer {q['quantizer']} from {percent(q['low'])} at {where(q['low_at'])} to {percent(q['latest'])} at "
        f"{where(q['latest_at'])}"
        for q in note["quantizers"]
    )
    return (
        f"Its usage is recovering, rising in each of the last {note['windows']} windows and by {note['rise']:g} of the "
        f"codebook's entropy or more since its lowest point ({rises}), so it is reported as info while it keeps rising."
    )


WORDING = {
    "NONFINITE_LOSS": nonfinite_loss,
    "RANK_DIVERGENCE": rank_divergence,
    "CODEBOOK_COLLAPSE": codebook_collapse,
}
INFO_NOTES = {"codebook_recovering": codebook_recovering}
