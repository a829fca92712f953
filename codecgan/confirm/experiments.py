"""The confirmation experiment of each finding code: data that `codecgan confirm` runs, never code in the CLI.

An experiment is a config change (dotted paths into the run's `config.yaml`, with values set or scaled), the
metric that decides and its better direction, the checkpoint both arms start from and a default length. Control
and treatment start from the same checkpoint with the same seed and data order; the change is the only difference.
A code with several experiments runs them in order and stops at the first that is confirmed ("halve the
adversarial weight, then the learning rate").

Config paths: `model.init_args.loss_weights.adversarial`, and for an item of the callback list
`trainer.callbacks[RankConsistency].init_args.resync` (the item whose class path ends with that name).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from codecgan.diagnosis.quality_metric import QUALITY_METRICS
from codecgan.diagnosis.registry import DIAGNOSES

FAMILIES = ("codec", "enhancement")
DIRECTIONS = ("max", "min")
STARTS = ("before_finding", "best")

G_LR = "model.init_args.optimizer_g.init_args.lr"
D_LR = "model.init_args.optimizer_d.init_args.lr"
WEIGHTS = "model.init_args.loss_weights."


@dataclass(frozen=True)
class Set:
    """Set the config value to `value`."""

    value: Any

    def describe(self) -> str:
        return f"= {self.value}"


@dataclass(frozen=True)
class Scale:
    """Multiply the config value by `factor`; `default` stands for a value the config leaves out (the module's
    default), and a value of 0 becomes `when_zero` (a number, or the config path of another value)."""

    factor: float
    default: float | None = None
    when_zero: float | str | None = None

    def describe(self) -> str:
        return f"×{self.factor:g}"


@dataclass(frozen=True)
class Experiment:
    """One confirmation experiment.

    name: what the treatment changes, in words ("adversarial weight ×4").
    changes: per family (`codec`, `enhancement`, `vocoder`, or `*` for every family), config path -> `Set` or `Scale`.
    metric: per family, `(tag, direction)` candidates; the first the original run logged decides. A tag ending
        in `*` sums every tag with that prefix. `direction` `max` or `min`: which way is better.
    start: `before_finding`: the last checkpoint at or before the finding's first step (a fresh start when
        there is none, as for a fault present from the first step); `best`: the last one at or before the best
        validation round of the decision metric.
    steps: default length of each arm (batches).
    transform: `abs_db` compares |20 log10(value)| (a level ratio's distance from 0 dB).
    """

    name: str
    changes: Mapping[str, Mapping[str, Set | Scale]]
    metric: Mapping[str, tuple[tuple[str, str], ...]]
    start: str = "before_finding"
    steps: int = 2000
    transform: str | None = None
    slug: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.start not in STARTS:
            raise ValueError(f"Experiment start must be one of {STARTS}, got {self.start!r}.")
        for candidates in self.metric.values():
            for _, direction in candidates:
                if direction not in DIRECTIONS:
                    raise ValueError(f"Experiment metric direction must be one of {DIRECTIONS}, got {direction!r}.")
        if not self.slug:
            object.__setattr__(self, "slug", "".join(c if c.isalnum() else "-" for c in self.name.lower()).strip("-"))

    def changes_for(self, family: str) -> dict[str, Set | Scale]:
        return {**self.changes.get("*", {}), **self.changes.get(family, {})}

    def metrics_for(self, family: str) -> tuple[tuple[str, str], ...]:
        return self.metric.get(family, ()) + self.metric.get("*", ())


def both(*candidates: tuple[str, str]) -> dict[str, tuple[tuple[str, str], ...]]:
    return {"*": candidates}


# The family's quality metric, as the rules that watch quality choose it: the first the run logged decides.
QUALITY = both(*QUALITY_METRICS)

EXPERIMENTS: dict[str, tuple[Experiment, ...]] = {
    "EVAL_NONDETERMINISTIC": (
        Experiment(
            "fixed validation crops",
            {
                "codec": {"data.init_args.val_crop": Set("center")},
                "enhancement": {"data.init_args.val_crop": Set("full")},
            },
            both(("diag/eval_input_changed_fraction", "min")),
            steps=200,
        ),
    ),
    "PESQ_NONE_HIGH": (
        Experiment(
            "mask policy (score and skip per clip)",
            {"enhancement": {"model.init_args.pesq_failure_policy": Set("mask")}},
            both(("diag/pesq_none_rate", "min")),
            steps=200,
        ),
    ),
    "LOSS_METRIC_DIVERGENCE": (
        Experiment(
            "adversarial weight ×0.5",
            {
                "codec": {WEIGHTS + "adversarial": Scale(0.5, default=1.0)},
                "enhancement": {WEIGHTS + "gan": Scale(0.5, default=0.05)},
                "vocoder": {WEIGHTS + "adversarial": Scale(0.5, default=1.0)},  # Vocos's weight
            },
            QUALITY,
            start="best",
        ),
        Experiment("generator learning rate ×0.5", {"*": {G_LR: Scale(0.5)}}, QUALITY, start="best"),
    ),
    "DISCRIMINATOR_AT_CHANCE": (
        Experiment(
            "discriminator learning rate ×4",
            {"*": {D_LR: Scale(4.0, when_zero=G_LR)}},
            both(("diag/d_loss_to_chance", "min")),
            steps=500,
        ),
    ),
    "DISCRIMINATOR_FROZEN": (
        Experiment(
            "discriminator learning rate ×4",
            {"*": {D_LR: Scale(4.0, when_zero=G_LR)}},
            both(("diag/d_update_ratio", "max")),
            steps=200,
        ),
    ),
    "DISCRIMINATOR_OVERPOWERING": (
        Experiment("discriminator learning rate ×0.25", {"*": {D_LR: Scale(0.25)}}, QUALITY),
    ),
    "GAN_TERM_NEGLIGIBLE": (
        Experiment(
            "adversarial weight ×4",
            {
                "codec": {WEIGHTS + "adversarial": Scale(4.0, default=1.0, when_zero=1.0)},
                "enhancement": {WEIGHTS + "gan": Scale(4.0, default=0.05, when_zero=0.05)},
                # The vocoder warns only for a weight of 0: back to Vocos's 1.
                "vocoder": {WEIGHTS + "adversarial": Scale(4.0, default=1.0, when_zero=1.0)},
            },
            # Under the codec's loss balancer its share of the balanced gradient decides (logged only there).
            both(("diag/balancer_share/loss_adv", "max"), ("diag/grad_share/loss_adv", "max")),
            steps=500,
        ),
    ),
    "AMPLITUDE_UNSTABLE": (
        Experiment(
            "waveform L1 term (weight 1)",
            {"codec": {WEIGHTS + "waveform": Set(1.0)}},
            both(("val/amplitude_ratio", "min")),
            steps=500,
            transform="abs_db",
        ),
    ),
    "NEGATIVE_SNR": (
        Experiment("generator learning rate ×0.25", {"*": {G_LR: Scale(0.25)}}, both(("val/snr_db", "max")), steps=500),
        Experiment(
            "mel weight ×2",
            {
                "codec": {WEIGHTS + "mel": Scale(2.0, default=15.0)},
                "enhancement": {WEIGHTS + "magnitude": Scale(2.0, default=0.9)},
            },
            both(("val/snr_db", "max")),
            steps=500,
        ),
    ),
    "LENGTH_MISMATCH": (
        Experiment(
            "exact-length ISTFT",
            {"enhancement": {"model.init_args.generator.init_args.match_length": Set(True)}},
            both(("diag/length_mismatch", "min")),
            steps=100,
        ),
    ),
    "RANK_DIVERGENCE": (
        Experiment(
            "resynchronise from rank 0",
            {"*": {"trainer.callbacks[RankConsistency].init_args.resync": Set(True)}},
            both(("diag/rank_param_spread/*", "min")),
            steps=200,
        ),
    ),
    "METRIC_D_NOT_LEARNING": (
        Experiment(
            "metric discriminator learning rate ×2",
            {"enhancement": {D_LR: Scale(2.0, when_zero=G_LR)}},
            both(("diag/metric_d_corr", "max")),
            steps=500,
        ),
    ),
    "LR_VANISHED": (
        Experiment(
            "no learning-rate schedule",
            {"*": {"model.init_args.scheduler_g": Set(None), "model.init_args.scheduler_d": Set(None)}},
            QUALITY,
        ),
    ),
}

# Codes whose fix is not a config switch; `confirm` says so instead of guessing. The reasons are the registry's.
WITHOUT_EXPERIMENT = {d.code: d.without_experiment for d in DIAGNOSES if d.without_experiment}
