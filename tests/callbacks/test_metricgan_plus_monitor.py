"""MetricDiscriminatorMonitor on MetricGAN+'s outputs (the metric discriminator's error on enhanced and noisy clips,
the replay buffer), and REPLAY_BUFFER_STALLED on scripted epochs."""

from __future__ import annotations

import pytest
import torch

from callbacks import MetricDiscriminatorMonitor
from codecgan.diagnosis import MetricHistory
from codecgan.diagnosis.rules import replay_buffer_stalled
from tests.callbacks.callback_fakes import FakeModule, FakeTrainer, train_steps


def plus_outputs(replayed: int, buffer: int, noisy_error: float = 0.2) -> dict:
    """A MetricGAN+ step: D is off by 0.1 on every enhanced clip and by `noisy_error` on every noisy one."""
    target = torch.tensor([0.2, 0.4, 0.6, 0.8])
    return {
        "metric_d_prediction": target + 0.1,
        "pesq_target": target,
        "metric_d_prediction_noisy": target - noisy_error,
        "pesq_target_noisy": target,
        "replay_items": torch.tensor(replayed),
        "replay_buffer_items": torch.tensor(buffer),
    }


def logged(module: FakeModule, name: str) -> list[float]:
    return [value for tag, value, _ in module.logged if tag == name]


def test_errors_on_enhanced_and_noisy_apart_and_the_replay_buffer_per_interval_and_epoch() -> None:
    callback, trainer, module = MetricDiscriminatorMonitor(), FakeTrainer(log_every_n_steps=2), FakeModule()
    steps = [plus_outputs(0, 4), plus_outputs(2, 8), plus_outputs(3, 12, 0.3), plus_outputs(3, 16, 0.3)]
    train_steps(callback, trainer, module, steps + [plus_outputs(5, 20)])  # logging steps at batches 1 and 3
    assert logged(module, "diag/metric_d_error/enhanced") == pytest.approx([0.1, 0.1])
    assert logged(module, "diag/metric_d_mae") == pytest.approx([0.1, 0.1])  # the same clips, under its old name
    assert logged(module, "diag/metric_d_error/noisy") == pytest.approx([0.2, 0.3])
    assert logged(module, "diag/replay_items") == [2.0, 6.0]
    assert logged(module, "diag/replay_buffer_items") == [8.0, 16.0]  # the latest size, not a sum over batches
    callback.on_train_epoch_end(trainer, module)
    assert module.last("diag/replay_items_epoch") == 13.0  # the partial interval after batch 3 included
    assert module.last("diag/replay_buffer_items_epoch") == 20.0
    assert callback.epoch_replay_items == 0.0


def test_under_ddp_the_counts_and_buffers_are_summed_over_ranks() -> None:
    callback, trainer, module = MetricDiscriminatorMonitor(), FakeTrainer(world_size=2), FakeModule()
    train_steps(callback, trainer, module, [plus_outputs(3, 12)])  # the fake's all-reduce doubles every sum
    assert module.last("diag/replay_buffer_items") == 24.0 and module.last("diag/replay_items") == 6.0
    assert module.last("diag/metric_d_error/noisy") == pytest.approx(0.2)  # a ratio of sums: the same


def test_without_metricgan_plus_keys_nothing_new_is_logged() -> None:
    callback, trainer, module = MetricDiscriminatorMonitor(), FakeTrainer(), FakeModule()
    target = torch.tensor([0.2, 0.4])
    train_steps(callback, trainer, module, [{"metric_d_prediction": target, "pesq_target": target}] * 3)
    callback.on_train_epoch_end(trainer, module)
    assert module.names() == {"diag/metric_d_mae", "diag/metric_d_corr"}


def test_a_buffer_that_stays_empty_raises_the_alarm_at_the_third_epoch() -> None:
    callback, trainer, module = MetricDiscriminatorMonitor(), FakeTrainer(log_every_n_steps=2), FakeModule()
    for epoch in range(3):
        trainer.current_epoch = epoch
        train_steps(callback, trainer, module, [plus_outputs(0, 0)] * 4)
        if epoch < 2:
            callback.on_train_epoch_end(trainer, module)
            assert not callback.alarms.active
    with pytest.warns(UserWarning, match="REPLAY_BUFFER_STALLED.*held no items"):
        callback.on_train_epoch_end(trainer, module)
    assert (
        callback.alarms.active["REPLAY_BUFFER_STALLED"]["first_step"] == 12
    )  # the end of epoch 2, the second empty one


def test_the_replay_state_resumes() -> None:
    callback, trainer, module = MetricDiscriminatorMonitor(), FakeTrainer(log_every_n_steps=4), FakeModule()
    train_steps(callback, trainer, module, [plus_outputs(2, 8)] * 6)  # 2 batches after the logging step
    resumed = MetricDiscriminatorMonitor()
    resumed.load_state_dict(callback.state_dict())
    for monitor in (callback, resumed):
        monitor.on_train_epoch_end(trainer, module)
    assert logged(module, "diag/replay_items_epoch") == [12.0, 12.0]
    assert logged(module, "diag/replay_buffer_items_epoch") == [8.0, 8.0]
    assert resumed.history.series("diag/replay_items_epoch") == callback.history.series("diag/replay_items_epoch")


def epochs(sizes: list[float], replayed: list[float]) -> MetricHistory:
    history = MetricHistory()
    for epoch, (size, count) in enumerate(zip(sizes, replayed)):
        history.add("diag/replay_buffer_items_epoch", size, step=64 * (epoch + 1) - 1, epoch=epoch)
        history.add("diag/replay_items_epoch", count, step=64 * (epoch + 1) - 1, epoch=epoch)
    return history


@pytest.mark.parametrize(
    "sizes, replayed, expected",
    [
        ([0, 40, 80, 120, 160], [0, 8, 16, 24, 32], None),  # MetricGAN+: fills after the first epoch, a fifth replayed
        ([0, 40, 40, 40, 40], [0, 8, 8, 8, 8], None),  # a capped buffer, still replayed
        ([0, 0, 0, 0], [0, 0, 0, 0], ("warning", "empty", 2)),
        ([0, 40, 40, 40], [0, 8, 0, 0], ("warning", "unused", 3)),
        ([0, 0, 0, 40, 80], [0, 0, 0, 8, 16], ("info", "empty", 2)),  # filled late: settled
        ([0, 0, 40], [0, 0, 8], None),  # one empty epoch after the first is not yet a finding
    ],
    ids=["healthy", "capped", "never-fills", "never-replayed", "filled-late", "one-epoch"],
)
def test_replay_buffer_stalled_on_scripted_epochs(sizes: list, replayed: list, expected: tuple | None) -> None:
    finding = replay_buffer_stalled(epochs(sizes, replayed))
    if expected is None:
        assert finding is None
        return
    severity, kind, first_epoch = expected  # where the condition has held for 2 epochs
    assert (finding.severity, finding.values["kind"], finding.first_epoch) == (severity, kind, first_epoch)
    assert finding.values["largest_size"] == max(sizes)


def test_the_evidence_gives_the_numbers() -> None:
    finding = replay_buffer_stalled(epochs([0, 40, 40, 40], [0, 8, 0, 0]))
    assert finding.evidence == (
        "MetricGAN+'s replay buffer held 40 items of which none was replayed (diag/replay_items_epoch 0) at the end "
        "of 2 consecutive epochs by epoch 3 (step 255), after the first epoch; at epoch 3 (step 255) it held 40 "
        "items and 0 replayed in that epoch (at most 40 over the run), so the metric discriminator learns only the "
        "current generator's clips and can forget how it scored earlier ones."
    )
    assert replay_buffer_stalled(MetricHistory()) is None
