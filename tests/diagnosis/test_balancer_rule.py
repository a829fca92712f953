"""GAN_TERM_NEGLIGIBLE under EnCodec's loss balancer: the balanced share is what steers the generator."""

from __future__ import annotations

import warnings

import pytest
import torch

from callbacks import GradientBalance
from codecgan.diagnosis.registry import RULES
from codecgan.diagnosis.wording import render
from tests.callbacks.callback_fakes import FakeModule, FakeTrainer, train_steps
from tests.diagnosis.test_rules import history

RAW_SMALL = {"diag/grad_share/loss_adv": [0.004] * 4, "diag/grad_share/loss_mel": [0.99] * 4}


def test_a_small_raw_share_that_the_balancer_rescales_is_reported_as_info() -> None:
    finding = RULES["GAN_TERM_NEGLIGIBLE"](
        history(**RAW_SMALL, **{"diag/balancer_share/loss_adv": [0.4] * 4, "diag/balancer_share/loss_mel": [0.2] * 4})
    )
    assert finding is not None and finding.severity == "info"
    evidence, suggestion = render(finding.code, finding.values)
    assert "loss_adv 0.4%" in evidence and "loss_adv 40%" in evidence and "rescales" in evidence
    assert "loss_balancer" in suggestion and suggestion.endswith(".")


def test_a_gan_term_without_weight_in_the_balancer_is_a_warning() -> None:
    finding = RULES["GAN_TERM_NEGLIGIBLE"](
        history(
            **{"diag/grad_share/loss_adv": [0.3] * 4, "diag/grad_share/loss_mel": [0.7] * 4},
            **{"diag/balancer_share/loss_adv": [0.0] * 4, "diag/balancer_share/loss_mel": [0.33] * 4},
        )
    )
    assert finding is not None and finding.severity == "warning" and finding.first_epoch == 2
    evidence, suggestion = render(finding.code, finding.values)
    assert "loss balancer's gradient" in evidence and "loss_adv 0.0%" in evidence and "loss_mel had 33%" in evidence
    assert "model.init_args.loss_balancer.weights.adversarial" in suggestion


def test_balanced_healthy_shares_say_nothing() -> None:
    balanced = {"diag/balancer_share/loss_adv": [0.4] * 4, "diag/balancer_share/loss_mel": [0.2] * 4}
    raw = {"diag/grad_share/loss_adv": [0.3] * 4, "diag/grad_share/loss_mel": [0.7] * 4}
    assert RULES["GAN_TERM_NEGLIGIBLE"](history(**raw, **balanced)) is None


def test_gradient_balance_alarms_on_the_balanced_share_not_on_the_raw_one() -> None:
    callback, trainer, module = GradientBalance(every_n_steps=1), FakeTrainer(), FakeModule()
    norms = {"loss_mel": torch.tensor(9.0), "loss_adv": torch.tensor(0.01)}  # a raw share of 0.1%
    rescaled = {"diag/balancer_share/loss_mel": torch.tensor(0.5), "diag/balancer_share/loss_adv": torch.tensor(0.5)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no alarm
        train_steps(callback, trainer, module, [{"term_grad_norms": norms, "objective_logs": rescaled}] * 3)
    assert callback.alarms.active == {}
    assert [p.value for p in callback.history.series("diag/balancer_share/loss_adv")] == [0.5] * 3
    unweighted = {**rescaled, "diag/balancer_share/loss_adv": torch.tensor(0.0)}
    with pytest.warns(UserWarning, match="GAN_TERM_NEGLIGIBLE.*loss balancer's gradient"):
        train_steps(callback, trainer, module, [{"term_grad_norms": norms, "objective_logs": unweighted}] * 3)
