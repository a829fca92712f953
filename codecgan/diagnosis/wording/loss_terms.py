"""The wording of the findings of `codecgan.diagnosis.rules.loss_terms`."""

from __future__ import annotations

from typing import Any, Mapping

from codecgan.diagnosis import tags
from codecgan.diagnosis.wording.phrases import percent, where


def weight_text(term: Mapping[str, Any]) -> str:
    """'its weight model.init_args.loss_weights.phase is 0, where the recipe's is 0.3' (or the logged-value form)."""
    if term["key"] is None:
        return f"its logged value train/{term['term']} is 0 at every step, so its weight is 0"
    recipe = f", where the recipe's is {term['published']:g}" if term["published"] is not None else ""
    return f"its weight {term['key']} is 0{recipe}"


def loss_term_disabled(v: Mapping[str, Any]) -> tuple[str, str]:
    listed = "; ".join(
        f"{term['term']} carried {percent(term['share'])} of the generator-output gradient at {where(term['at'])}"
        + ("" if term["share_now"] < v["threshold"] else f" ({percent(term['share_now'])} now)")
        + f": {weight_text(term)}"
        for term in v["terms"]
    )
    evidence = (
        f"{listed}. That is the median of the last {v['window']} measurements, under {percent(v['threshold'])}, while "
        f"{v['largest_term']} carried {percent(v['largest_share'])}: the term is computed and logged but never trains "
        f"the generator."
    )
    keys = [term for term in v["terms"] if term["key"] is not None]
    restore = (
        ", ".join(
            f"{term['key']} to {term['published']:g}" if term["published"] is not None else f"{term['key']} above 0"
            for term in keys
        )
        if keys
        else "the term's weight above 0"
    )
    suggestion = (
        f"Set {restore} (or remove the key to take the recipe's value), unless the ablation is intended, and check "
        f"that {tags.GRAD_SHARE_PREFIX}<term> rises to a few percent; GradientBalance logs the shares."
    )
    return evidence, suggestion


WORDING = {"LOSS_TERM_DISABLED": loss_term_disabled}
INFO_NOTES: dict[str, Any] = {}
