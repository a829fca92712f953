"""LOSS_TERM_DISABLED on scripted gradient shares, and GradientBalance recording each family's term weights."""

from __future__ import annotations

import pytest
import torch

from callbacks import GradientBalance
from callbacks.gradient_balance import loss_term_weights
from codecgan.diagnosis import MetricHistory
from codecgan.diagnosis.rules import loss_term_disabled
from tests.callbacks.callback_fakes import FakeModule, FakeTrainer, train_steps

# Shares as the tiny MP-SENet logs them every 10 steps (loss_phase: 6.5-14% in 100 steps when weighted 0.3).
HEALTHY = {
    "loss_magnitude": [0.55, 0.52, 0.50, 0.48, 0.47, 0.46],
    "loss_phase": [0.07, 0.12, 0.15, 0.18, 0.20, 0.19],
    "loss_complex": [0.2, 0.2, 0.2, 0.2, 0.2, 0.2],
    "loss_adv": [0.02, 0.02, 0.02, 0.02, 0.02, 0.02],
}
MPSENET_WEIGHTS = {
    "loss_magnitude": {"key": "model.init_args.loss_weights.magnitude", "weight": 0.9, "published": 0.9},
    "loss_phase": {"key": "model.init_args.loss_weights.phase", "weight": 0.3, "published": 0.3},
    "loss_complex": {"key": "model.init_args.loss_weights.complex", "weight": 0.1, "published": 0.1},
}
PHASE_OFF = {**MPSENET_WEIGHTS, "loss_phase": {**MPSENET_WEIGHTS["loss_phase"], "weight": 0.0}}


def shares(series: dict[str, list[float]], **train: list[float]) -> MetricHistory:
    """One measurement every 10 steps from step 1, as GradientBalance(every_n_steps=10) takes them."""
    history = MetricHistory()
    for term, values in series.items():
        for i, value in enumerate(values):
            history.add(f"diag/grad_share/{term}", value, step=1 + 10 * i, epoch=0)
    for term, values in train.items():
        for i, value in enumerate(values):
            history.add(f"train/{term}", value, step=10 * (i + 1), epoch=0)
    return history


def phase_off() -> dict[str, list[float]]:
    total = [m + c + a for m, c, a in zip(HEALTHY["loss_magnitude"], HEALTHY["loss_complex"], HEALTHY["loss_adv"])]
    rescaled = {t: [v / s for v, s in zip(HEALTHY[t], total)] for t in ("loss_magnitude", "loss_complex", "loss_adv")}
    return {**rescaled, "loss_phase": [0.0] * 6}


def test_a_term_weighted_zero_is_named_with_its_share_key_and_recipe_value() -> None:
    finding = loss_term_disabled(shares(phase_off()), PHASE_OFF)
    assert finding is not None and finding.severity == "warning"
    assert (finding.first_step, finding.values["largest_term"]) == (21, "loss_magnitude")  # the third measurement
    (term,) = finding.values["terms"]
    assert (term["term"], term["share"], term["weight"], term["published"]) == ("loss_phase", 0.0, 0.0, 0.3)
    assert finding.values["largest_share"] == pytest.approx(0.48 / 0.70)  # the median of the last 5
    assert finding.evidence.startswith(
        "loss_phase carried 0.0% of the generator-output gradient at epoch 0 (step 21): its weight "
        "model.init_args.loss_weights.phase is 0, where the recipe's is 0.3. That is the median of the last 5 "
        "measurements, under 0.1%, while loss_magnitude carried 69%"
    )
    assert "Set model.init_args.loss_weights.phase to 0.3" in finding.suggestion


@pytest.mark.parametrize(
    "series, weights",
    [
        (HEALTHY, MPSENET_WEIGHTS),  # every term trains
        (phase_off(), MPSENET_WEIGHTS),  # no share, but weighted: a term that does not reach the probe (loss_vq)
        (phase_off(), {**PHASE_OFF, "loss_phase": {**PHASE_OFF["loss_phase"], "published": 0.0}}),  # the recipe's 0
        (phase_off(), {}),  # a term without a recorded weight
        ({"loss_magnitude": [0.9] * 6, "loss_adv": [0.0] * 6}, {}),  # a GAN term: GAN_TERM_NEGLIGIBLE's
    ],
    ids=["healthy", "weighted", "recipe-zero", "unrecorded", "gan-term"],
)
def test_quiet_unless_a_term_the_recipe_weighs_is_weighted_zero(series: dict, weights: dict) -> None:
    assert loss_term_disabled(shares(series), weights) is None


def test_two_measurements_are_too_few() -> None:
    two = {term: values[:2] for term, values in phase_off().items()}
    assert loss_term_disabled(shares(two), PHASE_OFF) is None


def test_without_recorded_weights_a_term_logged_at_zero_throughout_is_weighted_zero() -> None:
    finding = loss_term_disabled(shares(phase_off(), loss_phase=[0.0] * 6, loss_magnitude=[1.2] * 6))
    assert finding is not None and finding.values["terms"][0]["key"] is None
    assert "its logged value train/loss_phase is 0 at every step" in finding.evidence
    assert loss_term_disabled(shares(phase_off(), loss_phase=[0.0] * 5 + [0.1])) is None
    assert loss_term_disabled(shares(phase_off())) is None  # no logged value: nothing says the weight is 0


def test_a_weight_restored_on_resume_settles_to_info() -> None:
    restored = {**phase_off(), "loss_phase": [0.0] * 6 + [0.15] * 5}
    restored.update({t: v + [v[-1]] * 5 for t, v in phase_off().items() if t != "loss_phase"})
    finding = loss_term_disabled(shares(restored), PHASE_OFF)
    assert finding is not None and finding.severity == "info"
    assert finding.values["terms"][0]["share_now"] == pytest.approx(0.15)


class Recipe(FakeModule):
    """A module with MetricGANEnhancer's loss attributes."""

    def __init__(self, recipe: str, weights: dict[str, float]) -> None:
        super().__init__()
        self.loss_recipe, self.loss_weights = recipe, weights


def test_gradient_balance_records_the_weights_and_raises_the_alarm() -> None:
    module = Recipe("mpsenet", {"magnitude": 0.9, "phase": 0.0, "complex": 0.1, "gan": 0.05})
    callback, trainer = GradientBalance(every_n_steps=1), FakeTrainer()
    callback.on_fit_start(trainer, module)
    assert callback.term_weights["loss_phase"] == {
        "key": "model.init_args.loss_weights.phase",
        "weight": 0.0,
        "published": 0.3,
    }
    assert callback.term_weights["loss_adv"]["weight"] == 0.05
    assert callback.rule_settings()["LOSS_TERM_DISABLED"]["term_weights"] == callback.term_weights
    norms = {"loss_magnitude": torch.tensor(9.0), "loss_phase": torch.tensor(0.0), "loss_adv": torch.tensor(1.0)}
    with pytest.warns(UserWarning, match="LOSS_TERM_DISABLED.*loss_phase carried 0.0%"):
        train_steps(callback, trainer, module, [{"term_grad_norms": norms}] * 3)
    assert set(callback.alarms.active) == {"LOSS_TERM_DISABLED"}


def test_codec_weights_leave_out_the_vq_terms_and_the_balanced_ones() -> None:
    from codecgan.codec_module import CodecGAN

    class Codec(CodecGAN):
        def __init__(self, balancer: object | None) -> None:
            torch.nn.Module.__init__(self)
            self.loss_weights = {"mel": 15.0, "adversarial": 1.0, "commitment": 0.25, "codebook": 1.0}
            self.loss_balancer = balancer

    plain = loss_term_weights(Codec(None))
    assert sorted(plain) == ["loss_adv", "loss_mel"] and plain["loss_mel"]["published"] == 15.0
    assert loss_term_weights(Codec(object())) == {}
    assert loss_term_weights(FakeModule()) == {}


def test_vocoder_weights_record_vocos_recipe_and_its_family() -> None:
    from callbacks.run_config import model_family
    from codecgan.vocoder_module import VocoderGAN

    class Vocoder(VocoderGAN):
        def __init__(self) -> None:
            torch.nn.Module.__init__(self)
            self.loss_recipe = "vocos"
            self.loss_weights = {"mel": 0.0, "adversarial": 1.0, "feature_matching": 1.0}

    weights = loss_term_weights(Vocoder())
    assert weights["loss_mel"] == {"key": "model.init_args.loss_weights.mel", "weight": 0.0, "published": 45.0}
    assert weights["loss_adv"]["published"] == 1.0 and weights["loss_fm"]["published"] == 1.0
    assert model_family(Vocoder()) == "vocoder"
    finding = loss_term_disabled(shares({"loss_mel": [0.0] * 4, "loss_fm": [0.9] * 4}), weights)
    assert finding.severity == "warning" and "loss_mel" in finding.evidence and "45" in finding.evidence
