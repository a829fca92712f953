"""Every diagnosis code, in one table: its rule, its wording, the callback that raises it live, its `codecgan confirm`
experiment, its failure-zoo overlays, its family, the severities it takes and what it means in one line.

A code lives in several places because each piece belongs to a different layer: the rule (a pure function,
`codecgan.diagnosis.rules`), its wording (`codecgan.diagnosis.wording`, which `Finding` renders from below the rules),
the live callback (`callbacks/`, which imports codecgan), the confirmation experiment (`codecgan.confirm.experiments`,
which reads findings) and the zoo overlay (`experiments/zoo/<name>.yaml`). This table names them all, so it is the one
place to add a code: `RULES` and `run_rules` (what `codecgan diagnose` runs) and `codecgan confirm`'s
`WITHOUT_EXPERIMENT` are derived from it, and `tests/diagnosis/test_registry.py` fails when a code lacks an entry
here or an entry lacks one of its pieces (or the stated reason it has none). The callback is named, not imported
(`callbacks/` imports codecgan), and `codecgan.confirm` looks its experiments up by code (it reads this package's
findings, so this package does not import it).

Adding a code: write its rule (returning a `Finding` with the code) and its wording (in the matching module's
`WORDING`), add it here, raise it from a callback (listed in that callback's `codes`), then give it an experiment in
`codecgan.confirm.experiments.EXPERIMENTS` or say here why there is none, and an overlay in `experiments/zoo/` whose
hypothesis line ends with `(CODE).` or say here why there is none.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from codecgan.diagnosis.findings import SEVERITIES, Finding
from codecgan.diagnosis.history import MetricHistory
from codecgan.diagnosis.rules import (
    amplitude_unstable,
    codebook_collapse,
    data_leak,
    discriminator_at_chance,
    discriminator_frozen,
    discriminator_overpowering,
    eval_nondeterministic,
    feature_matching_vanished,
    gan_term_negligible,
    length_mismatch,
    loss_metric_divergence,
    loss_spike,
    loss_term_disabled,
    lr_vanished,
    metric_d_not_learning,
    negative_snr,
    nonfinite_loss,
    pesq_none_high,
    rank_divergence,
    replay_buffer_stalled,
    resume_discontinuity,
)
from codecgan.diagnosis.wording import WORDING, Values

Rule = Callable[..., "Finding | None"]
FAMILIES = ("codec", "enhancement", "both")


@dataclass(frozen=True)
class Diagnosis:
    """One diagnosis code and where each of its pieces lives.

    code: the stable name findings carry ("LOSS_METRIC_DIVERGENCE").
    rule: the pure function from a `MetricHistory` (and the settings a run recorded) to a finding or None.
    description: what the code means, in one line.
    family: the model family it applies to, "codec", "enhancement" or "both" (not specific to one: every family,
        the vocoder's included, runs it; a rule is silent on the tags a family does not log).
    severities: the lowest and the highest severity its findings take (a rule whose condition has settled reports it
        as info).
    callback: the callback that raises it live, as its class path ("callbacks.SignalStats").
    without_experiment: why `codecgan confirm` has no experiment for it ("" when
        `codecgan.confirm.experiments.EXPERIMENTS` has one).
    zoo: the overlays of `experiments/zoo/` that induce it (file stems); without_zoo: why there is none.
    """

    code: str
    rule: Rule
    description: str
    family: str
    severities: tuple[str, str]
    callback: str
    without_experiment: str = ""
    zoo: tuple[str, ...] = ()
    without_zoo: str = ""

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"{self.code}: family must be one of {FAMILIES}, got {self.family!r}.")
        low, high = self.severities
        if not (low in SEVERITIES and high in SEVERITIES and SEVERITIES.index(low) <= SEVERITIES.index(high)):
            raise ValueError(
                f"{self.code}: severities must be (lowest, highest) of {SEVERITIES}, got {self.severities}."
            )
        if not self.callback.startswith("callbacks."):
            raise ValueError(f"{self.code}: callback must be a class path 'callbacks.<Name>', got {self.callback!r}.")
        if bool(self.zoo) == bool(self.without_zoo):
            raise ValueError(f"{self.code}: name its zoo overlays or say why there is none, not both or neither.")

    @property
    def wording(self) -> Callable[[Values], tuple[str, str]]:
        """The function of a finding's values returning its (evidence, suggestion)."""
        return WORDING[self.code]

    @property
    def callback_name(self) -> str:
        """The callback's class name ("SignalStats")."""
        return self.callback.removeprefix("callbacks.")

    @property
    def severity_range(self) -> str:
        """ "warning", or "info–critical" for a range."""
        low, high = self.severities
        return low if low == high else f"{low}–{high}"


DIAGNOSES: tuple[Diagnosis, ...] = (
    Diagnosis(
        "NONFINITE_LOSS",
        nonfinite_loss,
        "a training loss became NaN or infinite, or steps were skipped for it",
        "both",
        ("warning", "critical"),
        "callbacks.DivergenceMonitor",
        without_experiment="rerun from the last finite checkpoint with Trainer(detect_anomaly=True) to find the first NaN",
        zoo=("nonfinite_loss",),
    ),
    Diagnosis(
        "RANK_DIVERGENCE",
        rank_divergence,
        "the DDP replicas' parameters differ: the ranks train different models",
        "both",
        ("critical", "critical"),
        "callbacks.RankConsistency",
        zoo=("rank_desync",),
    ),
    Diagnosis(
        "LOSS_METRIC_DIVERGENCE",
        loss_metric_divergence,
        "validation quality falls from its best while the training loss keeps falling",
        "both",
        ("critical", "critical"),
        "callbacks.DivergenceMonitor",
        without_zoo="a quality that peaks and then falls takes longer than the zoo's tiny runs; "
        "docs/examples/enhancement_story.csv shows it",
    ),
    Diagnosis(
        "EVAL_NONDETERMINISTIC",
        eval_nondeterministic,
        "validation inputs change from round to round (random validation crops)",
        "both",
        ("warning", "warning"),
        "callbacks.EvalDeterminism",
        zoo=("random_eval_crop",),
    ),
    Diagnosis(
        "PESQ_NONE_HIGH",
        pesq_none_high,
        "PESQ fails on many batches, dropping the metric discriminator's term",
        "enhancement",
        ("info", "critical"),
        "callbacks.PesqHealth",
        zoo=("pesq_drop_batch_silence",),
    ),
    Diagnosis(
        "METRIC_D_NOT_LEARNING",
        metric_d_not_learning,
        "the metric discriminator does not track the true PESQ",
        "enhancement",
        ("info", "warning"),
        "callbacks.MetricDiscriminatorMonitor",
        without_zoo="no overlay targets it; overpowering_discriminator and istft_length_mismatch raise it "
        "(bench/results/zoo.md)",
    ),
    Diagnosis(
        "REPLAY_BUFFER_STALLED",
        replay_buffer_stalled,
        "MetricGAN+'s replay buffer stays empty, or nothing is replayed from it, after the first epoch",
        "enhancement",
        ("info", "warning"),
        "callbacks.MetricDiscriminatorMonitor",
        without_experiment="a buffer that stays empty has a cap of 0 (model.init_args.history_max_items or "
        "history_max_megabytes) or a loop that writes no clips to it: read the config before running arms",
        zoo=("replay_history_zero",),
    ),
    Diagnosis(
        "DISCRIMINATOR_AT_CHANCE",
        discriminator_at_chance,
        "the discriminator's loss stays at chance while its weights move",
        "both",
        ("info", "warning"),
        "callbacks.DiscriminatorHealth",
        zoo=("starved_discriminator", "grouped_conv_discriminator"),
    ),
    Diagnosis(
        "DISCRIMINATOR_FROZEN",
        discriminator_frozen,
        "the discriminator's weights do not move",
        "both",
        ("info", "warning"),
        "callbacks.DiscriminatorHealth",
        zoo=("frozen_discriminator", "vocoder_discriminator_frozen"),
    ),
    Diagnosis(
        "DISCRIMINATOR_OVERPOWERING",
        discriminator_overpowering,
        "the discriminator wins outright while validation quality falls",
        "both",
        ("info", "warning"),
        "callbacks.DiscriminatorHealth",
        zoo=("overpowering_discriminator",),
    ),
    Diagnosis(
        "FEATURE_MATCHING_VANISHED",
        feature_matching_vanished,
        "the feature-matching loss became negligible",
        "both",
        ("info", "warning"),
        "callbacks.DiscriminatorHealth",
        without_experiment="a feature-matching loss that vanishes follows from its discriminator; "
        "confirm that code first",
        without_zoo="it follows from its discriminator; grouped_conv_discriminator raises it (bench/results/zoo.md)",
    ),
    Diagnosis(
        "GAN_TERM_NEGLIGIBLE",
        gan_term_negligible,
        "the adversarial terms' share of the generator's gradient is under 1%",
        "both",
        ("info", "warning"),
        "callbacks.GradientBalance",
        zoo=("gan_weight_zero", "balancer_adversarial_zero", "vocoder_gan_weight_zero"),
    ),
    Diagnosis(
        "LOSS_TERM_DISABLED",
        loss_term_disabled,
        "a reconstruction loss term is weighted 0 where its recipe's weight is not, so it never trains the generator",
        "both",
        ("info", "warning"),
        "callbacks.GradientBalance",
        without_experiment="set the weight the finding names back to the recipe's value it names; the term varies "
        "with the run, so no one config switch confirms it",
        zoo=("phase_weight_zero", "vocoder_mel_weight_zero"),
    ),
    Diagnosis(
        "NEGATIVE_SNR",
        negative_snr,
        "validation SNR below 0 dB: the error has more energy than the reference",
        "both",
        ("info", "warning"),
        "callbacks.SignalStats",
        zoo=("lr_too_high",),
    ),
    Diagnosis(
        "AMPLITUDE_UNSTABLE",
        amplitude_unstable,
        "the output's level is more than 1 dB off the reference's",
        "both",
        ("info", "warning"),
        "callbacks.SignalStats",
        without_zoo="no overlay targets it; the short codec overlays raise it next to their own code "
        "(bench/results/zoo.md)",
    ),
    Diagnosis(
        "LENGTH_MISMATCH",
        length_mismatch,
        "estimates and references differ in length at validation",
        "both",
        ("warning", "warning"),
        "callbacks.SignalStats",
        zoo=("istft_length_mismatch",),
    ),
    Diagnosis(
        "CODEBOOK_COLLAPSE",
        codebook_collapse,
        "a quantizer uses under half of its codebook's entropy",
        "codec",
        ("info", "critical"),
        "callbacks.CodebookUsage",
        without_experiment="codebook collapse needs a change of quantizer (e.g. codebook_dim, k-means init), "
        "not a weight",
        zoo=("codebook_decay_one",),
    ),
    Diagnosis(
        "LR_VANISHED",
        lr_vanished,
        "a learning rate decayed to nothing while validation quality stalls",
        "both",
        ("info", "warning"),
        "callbacks.LearningRateHealth",
        zoo=("lr_vanished",),
    ),
    Diagnosis(
        "DATA_LEAK",
        data_leak,
        "validation or test files are training files",
        "both",
        ("info", "warning"),
        "callbacks.DataLeakCheck",
        without_experiment="remove the shared files from the validation or test folder; nothing to train",
        zoo=("data_leak",),
    ),
    Diagnosis(
        "LOSS_SPIKE",
        loss_spike,
        "a loss jumps far above its recent level and comes back",
        "both",
        ("info", "warning"),
        "callbacks.LossSpikes",
        without_experiment="a spike that recovers needs no experiment",
        zoo=("loss_spike",),
    ),
    Diagnosis(
        "RESUME_DISCONTINUITY",
        resume_discontinuity,
        "a resumed run does not continue the trends of the run it resumed",
        "both",
        ("info", "warning"),
        "callbacks.ResumeContinuity",
        without_experiment="compare the resumed run with an uninterrupted one from the same checkpoint",
        zoo=("resume_discontinuity",),
    ),
)

REGISTRY: dict[str, Diagnosis] = {diagnosis.code: diagnosis for diagnosis in DIAGNOSES}
RULES: dict[str, Rule] = {diagnosis.code: diagnosis.rule for diagnosis in DIAGNOSES}


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
