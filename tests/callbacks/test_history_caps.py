"""A long run's diagnostic histories stay bounded by its rounds, and their rules answer as on every point: the
compacted history of DivergenceMonitor and LearningRateHealth gives the findings that the full record (what the logs
hold, and `codecgan diagnose` reads) gives."""

from __future__ import annotations

import io
import math

import pytest
import torch

from callbacks import DivergenceMonitor, LearningRateHealth
from callbacks.history_compaction import RECENT_POINTS
from codecgan.diagnosis.history import MetricHistory
from codecgan.diagnosis.rules import loss_metric_divergence, lr_vanished, nonfinite_loss
from tests.callbacks.callback_fakes import FakeModule, FakeTrainer

LOG_EVERY, VAL_EVERY, STEPS = 1, 50, 2000  # 2,000 logging points, 40 rounds


def record_everything(callback) -> MetricHistory:
    """Every point the callback records, also kept in a history that is never compacted: the run's full record."""
    full, add = MetricHistory(), callback.history.add

    def both(tag, value, step=None, epoch=None) -> None:
        full.add(tag, value, step, epoch)
        add(tag, value, step, epoch)

    callback.history.add = both
    return full


def quality(round_: int) -> float:
    """PESQ that peaks at round 4 (step 200) and then falls slowly, by 0.1 only after 25 rounds: the divergence is
    found more than 512 logging points after the best."""
    return 3.0 + 0.02 * min(round_, 4) - 0.004 * max(round_ - 4, 0)


def run(callback, trainer: FakeTrainer, output, on_round=None) -> None:
    module = FakeModule()
    for step in range(STEPS):
        callback.on_train_batch_end(trainer, module, output(step), None, step)
        trainer.advance()
        if (step + 1) % VAL_EVERY == 0:
            round_ = (step + 1) // VAL_EVERY
            trainer.callback_metrics = {"val/pesq": torch.tensor(quality(round_))}
            callback.on_validation_end(trainer, module)
            if on_round:
                on_round(callback)


def state_bytes(callback) -> int:
    buffer = io.BytesIO()
    torch.save(callback.state_dict(), buffer)
    return buffer.tell()


def test_divergence_after_a_plateau_longer_than_the_kept_points_is_found_as_on_the_full_record() -> None:
    callback = DivergenceMonitor(metric="val/pesq", mode="max")
    full = record_everything(callback)
    noise = torch.Generator().manual_seed(0)
    losses = (10.0 - 0.002 * torch.arange(STEPS) + 0.05 * torch.randn(STEPS, generator=noise)).tolist()
    losses[7] = math.nan  # a non-finite loss long before the kept points

    def output(step: int) -> dict:
        return {"losses": {"loss_g": torch.tensor(losses[step])}}

    sizes: list[int] = []
    with pytest.warns(UserWarning):
        run(callback, FakeTrainer(log_every_n_steps=LOG_EVERY), output, lambda c: sizes.append(state_bytes(c)))
    settings = callback.rule_settings()["LOSS_METRIC_DIVERGENCE"]
    live, offline = loss_metric_divergence(callback.history, **settings), loss_metric_divergence(full, **settings)
    assert live is not None and live == offline
    assert live.values["best_at"]["step"] == 200 and live.first_step > 200 + RECENT_POINTS
    assert nonfinite_loss(callback.history) == nonfinite_loss(full) is not None
    assert "LOSS_METRIC_DIVERGENCE" in callback.alarms.active and "NONFINITE_LOSS" in callback.alarms.active

    rounds = len(full.series("val/pesq"))
    assert len(full.series("train/loss_g")) == STEPS // LOG_EVERY
    # The points kept as logged, one per closed interval before them (and the non-finite one), and the raw points of
    # the interval the oldest kept point falls in.
    interval = VAL_EVERY // LOG_EVERY
    assert len(callback.history.series("train/loss_g")) <= RECENT_POINTS + rounds + 1 + interval
    assert len(callback.history.series("diag/nonfinite_loss_steps")) <= RECENT_POINTS + 1
    # Past the kept points the state grows by about one round's points a round, not by its logging steps.
    per_round = (sizes[-1] - sizes[-11]) / 10
    assert per_round < 3 * 25 < VAL_EVERY / LOG_EVERY * 25  # torch.save takes about 25 bytes a point


def test_a_learning_rate_that_vanished_long_ago_is_found_as_on_the_full_record() -> None:
    callback = LearningRateHealth()
    full = record_everything(callback)
    optimizers = [torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1e-3) for _ in range(2)]
    trainer = FakeTrainer(log_every_n_steps=LOG_EVERY, optimizers=optimizers)

    def output(step: int) -> dict:
        for optimizer in optimizers:  # decays at every batch: a new point at every logging step
            optimizer.param_groups[0]["lr"] *= 0.99
        return {}

    with pytest.warns(UserWarning, match="LR_VANISHED"):
        run(callback, trainer, output)
    live, offline = lr_vanished(callback.history), lr_vanished(full)
    assert live is not None and live == offline
    assert math.isclose(live.values["peak"], 1e-3 * 0.99)  # the first value, long compacted
    rounds = len(full.series("val/pesq"))
    assert len(full.series("train/lr_g")) == STEPS // LOG_EVERY
    assert len(callback.history.series("train/lr_g")) <= RECENT_POINTS + 2 * rounds + VAL_EVERY // LOG_EVERY


def test_a_history_shorter_than_the_kept_points_is_kept_as_logged() -> None:
    callback = DivergenceMonitor(metric="val/pesq", mode="max")
    full = record_everything(callback)
    trainer, module = FakeTrainer(log_every_n_steps=1), FakeModule()
    for step in range(RECENT_POINTS):
        callback.on_train_batch_end(trainer, module, {"losses": {"loss_g": torch.tensor(1.0 + step)}}, None, step)
        trainer.advance()
        if (step + 1) % VAL_EVERY == 0:
            trainer.callback_metrics = {"val/pesq": torch.tensor(3.0)}
            callback.on_validation_end(trainer, module)
    for tag in full.tags():
        assert callback.history.series(tag) == full.series(tag), tag
