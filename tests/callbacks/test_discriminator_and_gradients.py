"""DiscriminatorHealth and GradientBalance on scripted training outputs."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from callbacks import DiscriminatorHealth, GradientBalance
from tests.callbacks.callback_fakes import FakeModule, FakeTrainer, train_steps


def d_outputs(loss_d: float, loss_fm: float, chance: float = 2.0, stepped: bool = True) -> dict:
    return {
        "losses": {"loss_d": torch.tensor(loss_d), "loss_fm": torch.tensor(loss_fm), "loss_g": torch.tensor(20.0)},
        "d_stepped": stepped,
        "d_real": torch.tensor(0.2 if stepped else math.nan),
        "d_fake": torch.tensor(-0.1 if stepped else math.nan),
        "d_loss_chance": chance,
        "grad_norm_d": torch.tensor(0.5),
    }


def run_epochs(
    callback: DiscriminatorHealth, epochs: list[list[dict]], trainer: FakeTrainer, module: FakeModule
) -> None:
    for epoch, outputs in enumerate(epochs):
        trainer.current_epoch = epoch
        train_steps(callback, trainer, module, outputs)
        callback.on_train_epoch_end(trainer, module)


def test_interval_means_ratio_and_margin() -> None:
    callback, trainer, module = DiscriminatorHealth(), FakeTrainer(log_every_n_steps=2), FakeModule()
    train_steps(
        callback,
        trainer,
        module,
        [d_outputs(1.0, 0.5), d_outputs(1.4, 0.7), d_outputs(9.0, 9.0, stepped=False), d_outputs(1.2, 0.6)],
    )
    assert module.last("diag/d_loss_to_chance") == pytest.approx(0.6)  # the unstepped batch has no D loss
    assert module.last("diag/d_margin") == pytest.approx(0.3)
    assert module.last("diag/fm_to_early") == pytest.approx((9.6 / 2) / 0.6)
    assert "diag/d_loss_chance" not in module.names()  # the module logs it


def test_discriminator_at_chance_for_three_epochs_raises_both_alarms() -> None:
    callback, trainer, module = DiscriminatorHealth(), FakeTrainer(log_every_n_steps=2), FakeModule()
    with pytest.warns(UserWarning, match="DISCRIMINATOR_AT_CHANCE"):
        run_epochs(callback, [[d_outputs(1.995, 0.01)] * 4] * 3, trainer, module)
    assert set(callback.alarms.active) == {"DISCRIMINATOR_AT_CHANCE", "FEATURE_MATCHING_VANISHED"}
    assert callback.alarms.active["DISCRIMINATOR_AT_CHANCE"]["first_epoch"] == 2


def test_learning_discriminator_raises_nothing() -> None:
    callback, trainer, module = DiscriminatorHealth(), FakeTrainer(log_every_n_steps=2), FakeModule()
    run_epochs(callback, [[d_outputs(1.2, 1.0)] * 4] * 4, trainer, module)
    assert callback.alarms.active == {}


def test_gradient_balance_sets_the_interval_and_logs_shares_at_the_next_logging_step() -> None:
    callback, trainer, module = GradientBalance(every_n_steps=3), FakeTrainer(log_every_n_steps=2), FakeModule()
    callback.on_fit_start(trainer, module)
    assert module.term_gradient_interval == 3
    norms = {"loss_mag": torch.tensor(9.0), "loss_adv": torch.tensor(0.05), "loss_time": torch.tensor(0.95)}
    train_steps(
        callback, trainer, module, [{"term_grad_norms": norms}, {}, {}]
    )  # measured at batch 0, logged at batch 1
    assert module.last("diag/grad_share/loss_mag") == pytest.approx(0.9)
    assert module.last("diag/grad_share/loss_adv") == pytest.approx(0.005)
    assert module.last("diag/grad_norm_term/loss_time") == pytest.approx(0.95)


def test_negligible_gan_term_raises_the_alarm_after_three_measurements() -> None:
    callback, trainer, module = GradientBalance(every_n_steps=1), FakeTrainer(), FakeModule()
    norms = {"loss_mag": torch.tensor(9.0), "loss_adv": torch.tensor(0.01)}
    with pytest.warns(UserWarning, match="GAN_TERM_NEGLIGIBLE.*loss_adv 0.1%"):
        train_steps(callback, trainer, module, [{"term_grad_norms": norms}] * 3)
    assert callback.alarms.active["GAN_TERM_NEGLIGIBLE"]["first_step"] == 2


def test_a_discriminator_whose_weights_do_not_move_is_frozen_not_at_chance() -> None:
    callback, trainer, module = DiscriminatorHealth(), FakeTrainer(log_every_n_steps=2), FakeModule()
    frozen = [{**d_outputs(1.995, 1.0), "d_update_ratio": 0.0}] * 4  # the module's ratio, at logging steps
    with pytest.warns(UserWarning, match="DISCRIMINATOR_FROZEN"):
        run_epochs(callback, [frozen] * 3, trainer, module)
    assert set(callback.alarms.active) == {"DISCRIMINATOR_FROZEN"}
    assert callback.alarms.active["DISCRIMINATOR_FROZEN"]["first_step"] == 5  # the third logging step
    assert "diag/d_update_ratio" not in module.names()  # the module logs it


@pytest.mark.parametrize(("pesq", "raised"), [([2.0, 2.3, 2.5, 2.4, 2.3], True), ([2.0, 2.3, 2.5, 2.6, 2.7], False)])
def test_a_winning_discriminator_is_overpowering_only_while_quality_falls(pesq: list[float], raised: bool) -> None:
    callback, trainer, module = DiscriminatorHealth(), FakeTrainer(log_every_n_steps=2), FakeModule()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for value, adversarial in zip(pesq, [0.02, 0.02, 0.021, 0.025, 0.03]):
            outputs = [{**d_outputs(0.01, 1.0, chance=0.4), "d_update_ratio": 1e-3} for _ in range(4)]
            for output in outputs:
                output["losses"]["loss_adv"] = torch.tensor(adversarial)
            train_steps(callback, trainer, module, outputs)
            trainer.callback_metrics = {"val/pesq": torch.tensor(value)}
            callback.on_validation_end(trainer, module)
    assert any("DISCRIMINATOR_OVERPOWERING" in str(warning.message) for warning in caught) == raised
    if raised:
        assert set(callback.alarms.active) == {"DISCRIMINATOR_OVERPOWERING"}
        assert callback.alarms.active["DISCRIMINATOR_OVERPOWERING"]["first_step"] == 20  # the fifth validation
    else:
        assert callback.alarms.active == {}
