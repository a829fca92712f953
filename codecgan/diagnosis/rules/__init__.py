"""The diagnostic rules: pure functions from a MetricHistory to a Finding (or None), one per code.

The live callbacks and `codecgan diagnose` both call these functions; thresholds are named constants in the
module that uses them, each with a comment saying why. `codecgan.diagnosis.registry` lists them by code (`RULES`)
and runs them all (`run_rules`).
"""

from __future__ import annotations

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
from codecgan.diagnosis.rules.loss_terms import loss_term_disabled
from codecgan.diagnosis.rules.quality import (
    amplitude_unstable,
    eval_nondeterministic,
    length_mismatch,
    loss_metric_divergence,
    negative_snr,
)
from codecgan.diagnosis.rules.replay import replay_buffer_stalled
from codecgan.diagnosis.rules.resume import resume_discontinuity
from codecgan.diagnosis.rules.schedule_and_data import data_leak, loss_spike, lr_vanished
from codecgan.diagnosis.rules.training_health import codebook_collapse, nonfinite_loss, rank_divergence

__all__ = [
    "amplitude_unstable",
    "codebook_collapse",
    "data_leak",
    "discriminator_at_chance",
    "discriminator_frozen",
    "discriminator_overpowering",
    "eval_nondeterministic",
    "feature_matching_vanished",
    "gan_term_negligible",
    "length_mismatch",
    "loss_metric_divergence",
    "loss_term_disabled",
    "loss_spike",
    "lr_vanished",
    "metric_d_not_learning",
    "negative_snr",
    "nonfinite_loss",
    "pesq_none_high",
    "rank_divergence",
    "replay_buffer_stalled",
    "resume_discontinuity",
]
