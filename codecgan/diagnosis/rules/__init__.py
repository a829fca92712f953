"""The diagnostic rules: pure functions from a MetricHistory to a Finding (or None), one per code.

The live callbacks and `codecgan diagnose` both call these functions; thresholds are named constants in the
module that uses them, each with a comment saying why.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping

from codecgan.diagnosis.findings import Finding
from codecgan.diagnosis.history import MetricHistory
from codecgan.diagnosis.rules.adversarial import (
    feature_matching_vanished,
    gan_term_negligible,
    metric_d_not_learning,
    pesq_none_high,
)
from codecgan.diagnosis.rules.discriminator_balance import (
    discriminator_at_chance,
    discriminator_frozen,
    discriminator_overpowering,
)
from codecgan.diagnosis.rules.quality import (
    amplitude_unstable,
    eval_nondeterministic,
    length_mismatch,
    loss_metric_divergence,
    negative_snr,
)
from codecgan.diagnosis.rules.resume import resume_discontinuity
from codecgan.diagnosis.rules.schedule_and_data import data_leak, loss_spike, lr_vanished
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
    "DISCRIMINATOR_FROZEN": discriminator_frozen,
    "DISCRIMINATOR_OVERPOWERING": discriminator_overpowering,
    "FEATURE_MATCHING_VANISHED": feature_matching_vanished,
    "GAN_TERM_NEGLIGIBLE": gan_term_negligible,
    "NEGATIVE_SNR": negative_snr,
    "AMPLITUDE_UNSTABLE": amplitude_unstable,
    "LENGTH_MISMATCH": length_mismatch,
    "CODEBOOK_COLLAPSE": codebook_collapse,
    "LR_VANISHED": lr_vanished,
    "DATA_LEAK": data_leak,
    "LOSS_SPIKE": loss_spike,
    "RESUME_DISCONTINUITY": resume_discontinuity,
}


def run_rules(history: MetricHistory, settings: Mapping[str, Mapping[str, Any]] | None = None) -> list[Finding]:
    """Every rule's finding on `history`, unranked.

    `settings`: {code: keyword arguments} for the rules a run configured (a run's `diag/config` "rules", as the live
    callbacks passed them); codes without a rule here are skipped. Raises ValueError when a rule does not take them.
    """
    settings = settings or {}
    for code, kwargs in settings.items():
        if code in RULES:
            try:
                inspect.signature(RULES[code]).bind(history, **kwargs)
            except TypeError as error:
                raise ValueError(f"The settings {dict(kwargs)} for {code} do not fit its rule: {error}.") from None
    findings = (rule(history, **settings.get(code, {})) for code, rule in RULES.items())
    return [finding for finding in findings if finding is not None]


__all__ = ["RULES", "run_rules"] + [rule.__name__ for rule in RULES.values()]
