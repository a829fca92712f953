"""DivergenceMonitor: the live form of LOSS_METRIC_DIVERGENCE and NONFINITE_LOSS, and its three actions."""

from __future__ import annotations

import math

import pytest
import torch

from callbacks import DivergenceMonitor
from tests.callbacks.callback_fakes import FakeModule, FakeTrainer, train_steps

PESQ = [2.40, 2.55, 2.64, 2.57, 2.50, 2.43, 2.36]


def loss_outputs(value: float, steps: int = 4) -> list[dict]:
    return [
        {"loss": torch.tensor(value), "losses": {"loss_g": torch.tensor(value), "loss_mag": torch.tensor(value / 2)}}
    ] * steps


def run_rounds(callback: DivergenceMonitor, trainer: FakeTrainer, module: FakeModule, pesq: list[float]) -> None:
    for epoch, value in enumerate(pesq):
        trainer.current_epoch = epoch
        train_steps(callback, trainer, module, loss_outputs(1.0 * 0.9**epoch))
        trainer.callback_metrics = {"val/pesq": torch.tensor(value)}
        callback.on_validation_end(trainer, module)


def test_metric_falling_while_the_loss_falls_raises_the_alarm_at_the_right_round() -> None:
    callback, trainer, module = DivergenceMonitor(), FakeTrainer(log_every_n_steps=4), FakeModule()
    with pytest.warns(UserWarning, match="LOSS_METRIC_DIVERGENCE: val/pesq fell 0.14 from its best 2.64 at epoch 2"):
        run_rounds(callback, trainer, module, PESQ)
    assert callback.alarms.active["LOSS_METRIC_DIVERGENCE"]["first_epoch"] == 4
    assert not trainer.should_stop
    assert module.last("diag/alarm/LOSS_METRIC_DIVERGENCE") == 1.0 and module.last("diag/nonfinite_loss_steps") == 0


def test_stop_is_decided_with_reduce_boolean_decision_every_round() -> None:
    callback, trainer, module = DivergenceMonitor(action="stop"), FakeTrainer(log_every_n_steps=4), FakeModule()
    with pytest.warns(UserWarning, match="LOSS_METRIC_DIVERGENCE"):
        run_rounds(callback, trainer, module, PESQ[:5])
    assert trainer.should_stop and callback.stopped_reason == "val/pesq diverged from train/loss_g"
    # one decision per logging step (non-finite check) and one per validation round, made on every rank
    assert len(trainer.strategy.decisions) == 5 + 5 and trainer.strategy.decisions[-1] is True


def test_warn_and_checkpoint_best_saves_each_new_best(tmp_path) -> None:
    callback = DivergenceMonitor(action="warn_and_checkpoint_best", dirpath=str(tmp_path))
    trainer, module = FakeTrainer(log_every_n_steps=4), FakeModule()
    with pytest.warns(UserWarning) as warnings:
        run_rounds(callback, trainer, module, PESQ)
    messages = [str(w.message) for w in warnings]
    assert any(m.startswith("codecgan critical LOSS_METRIC_DIVERGENCE") for m in messages)
    assert f"The best val/pesq (2.640) is kept in {tmp_path / 'best_val-pesq.ckpt'}." in messages
    assert trainer.saved_checkpoints == [str(tmp_path / "best_val-pesq.ckpt")] * 3


def test_nonfinite_loss_is_read_back_only_at_logging_steps_and_stops() -> None:
    callback, trainer, module = DivergenceMonitor(action="stop"), FakeTrainer(log_every_n_steps=3), FakeModule()
    outputs = loss_outputs(1.0, 2) + [{"loss": torch.tensor(math.nan), "losses": {"loss_g": torch.tensor(math.nan)}}]
    # The NaN batch is a logging batch, so the module logs train/loss_g = nan: critical, as in the logs offline.
    with pytest.warns(UserWarning, match="critical NONFINITE_LOSS: train/loss_g became nan at epoch 0 \\(step 2\\)"):
        train_steps(callback, trainer, module, outputs[:2])
        assert not trainer.should_stop
        train_steps(callback, trainer, module, outputs[2:])
    assert trainer.should_stop and callback.stopped_reason == "a training loss became non-finite"


def test_missing_metric_is_reported_once() -> None:
    callback, trainer, module = DivergenceMonitor(metric="val/si_sdr"), FakeTrainer(), FakeModule()
    trainer.callback_metrics = {"val/pesq": torch.tensor(2.0)}
    with pytest.warns(UserWarning, match="found no 'val/si_sdr' in the logged metrics \\(val/ metrics: val/pesq\\)"):
        callback.on_validation_end(trainer, module)
    callback.on_validation_end(trainer, module)
    assert callback.history.tags() == []


def test_by_default_a_codec_is_watched_on_its_mel_distance_as_diagnose_does() -> None:
    """No metric given: the first validation's logged quality measure in `codecgan diagnose`'s order (val/pesq, then
    val/loss_mel, ...), kept through a checkpoint; the state key stays the configured one, so a resume finds it."""
    callback, trainer, module = DivergenceMonitor(), FakeTrainer(log_every_n_steps=4), FakeModule()
    key = callback.state_key
    mel = [3.0, 2.8, 2.6, 2.7, 2.8, 2.9, 3.0]  # best at epoch 2, then rising while the loss falls
    with pytest.warns(
        UserWarning, match="LOSS_METRIC_DIVERGENCE: val/loss_mel rose 0.20 from its best 2.60 at epoch 2"
    ):
        for epoch, value in enumerate(mel):
            trainer.current_epoch = epoch
            train_steps(callback, trainer, module, loss_outputs(1.0 * 0.9**epoch))
            trainer.callback_metrics = {"val/loss_mel": torch.tensor(value), "val/snr_db": torch.tensor(-2.0)}
            callback.on_validation_end(trainer, module)
    assert (callback.metric, callback.mode, callback.state_key) == ("val/loss_mel", "min", key)
    assert callback.rule_settings()["LOSS_METRIC_DIVERGENCE"]["metric"] == "val/loss_mel"
    resumed = DivergenceMonitor()
    resumed.load_state_dict(callback.state_dict())
    assert (resumed.metric, resumed.mode) == ("val/loss_mel", "min")


def test_without_a_quality_measure_logged_the_default_says_what_it_looked_for() -> None:
    callback, trainer, module = DivergenceMonitor(), FakeTrainer(), FakeModule()
    trainer.callback_metrics = {"val/loss": torch.tensor(1.0)}
    with pytest.warns(UserWarning, match="found no quality measure \\('val/pesq', 'val/loss_mel'"):
        callback.on_validation_end(trainer, module)
    assert callback.metric is None and callback.history.tags() == []
