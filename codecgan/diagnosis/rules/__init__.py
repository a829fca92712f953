"""The diagnostic rules: pure functions from a MetricHistory to a Finding (or None), one per code.

The live callbacks and `codecgan diagnose` both call these functions; thresholds are named constants in the
module that uses them, each with a comment saying why.
"""

from __future__ import annotations

from typing import Callable

from codecgan.diagnosis.findings import Finding
from codecgan.diagnosis.history import MetricHistory
from codecgan.diagnosis.rules.adversarial import (
    discriminator_at_chance,
    feature_matching_vanished,
    gan_term_negligible,
    metric_d_not_learning,
    pesq_none_high,
)
from codecgan.diagnosis.rules.quality import (
    amplitude_unstable,
    eval_nondeterministic,
    length_mismatch,
    loss_metric_divergence,
    negative_snr,
)
from codecgan.diagnosis.rules.training_health import codebook_collapse, nonfinite_loss, rank_divergence

Rule = Callable[[MetricHistory], "Finding | None"]

RULES: dict[str, Rule] = {
    "NONFINITE_LOSS": nonfinite_loss,
    "RANK_DIVERGENCE": rank_divergence,
    "LOSS_METRIC_DIVERGENCE": loss_metric_divergence,
    "EVAL_NONDETERMINISTIC": eval_nondeterministic,
    "PESQ_NONE_HIGH": pesq_none_high,
    "METRIC_D_NOT_LEARNING": metric_d_not_learning,
    "DISCRIMINATOR_AT_CHANCE": discriminator_at_chance,
    "FEATURE_MATCHING_VANISHED": feature_matching_vanished,
    "GAN_TERM_NEGLIGIBLE": gan_term_negligible,
    "NEGATIVE_SNR": negative_snr,
    "AMPLITUDE_UNSTABLE": amplitude_unstable,
    "LENGTH_MISMATCH": length_mismatch,
    "CODEBOOK_COLLAPSE": codebook_collapse,
}


def run_rules(history: MetricHistory) -> list[Finding]:
    """Every rule's finding on `history`, unranked."""
    return [finding for rule in RULES.values() if (finding := rule(history)) is not None]


__all__ = ["RULES", "run_rules"] + [rule.__name__ for rule in RULES.values()]
