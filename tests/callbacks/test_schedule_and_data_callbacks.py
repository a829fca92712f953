"""DataLeakCheck, LossSpikes and LearningRateHealth: their alarms on fakes, their resumable state, and a real fit whose
live DATA_LEAK alarm is logged and reported again by `codecgan diagnose`."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from callbacks import DataLeakCheck, LearningRateHealth, LossSpikes
from callbacks.loss_spikes import HISTORY_POINTS
from codecgan.cadence import is_logging_step, logged_step
from codecgan.diagnosis import MetricHistory
from codecgan.diagnosis.cli import diagnose_main
from codecgan.diagnosis.rules import loss_spike, lr_vanished
from codecgan.diagnosis.rules.schedule_and_data import (
    SPIKE_RECOVERY,
    SPIKE_WINDOW,
    find_spikes,
    loss_series,
    spike_finding,
)
from codecgan.lightning_cli import build_cli
from tests.callbacks.callback_fakes import FakeModule, FakeTrainer, same
from tests.conftest import EXPERIMENTS, tiny_trainer_overlay, write_overlay
from tests.data.wav_files import noise, write_audio

RATE = 16000


def write_split(root: Path, count: int, first_seed: int) -> Path:
    for index in range(count):
        write_audio(root / f"utt{index}.wav", noise(0.5, RATE, seed=first_seed + index), RATE)
    return root


def leaky_folders(tmp_path: Path) -> dict[str, str]:
    """8 training files; 3 validation files, one a renamed copy of a training file."""
    train = write_split(tmp_path / "data" / "train", 8, 0)
    val = write_split(tmp_path / "data" / "val", 2, 100)
    shutil.copy(train / "utt3.wav", val / "p287_001.wav")
    return {"train": str(train), "val": str(val), "test": None}


# -------------------------------------------------------------------------------------------------- DataLeakCheck
def test_data_leak_check_raises_an_alarm_with_the_count_and_the_file(tmp_path: Path) -> None:
    callback = DataLeakCheck()
    trainer = FakeTrainer(datamodule=SimpleNamespace(dirs=leaky_folders(tmp_path)))
    message = r"DATA_LEAK: When fit started at epoch 0 \(step 0\), 1 validation or test file is also training data"
    with pytest.warns(UserWarning, match=message):
        callback.on_fit_start(trainer, FakeModule())
    assert (
        "val file p287_001.wav is training file utt3.wav (same content)"
        in callback.alarms.active["DATA_LEAK"]["evidence"]
    )
    assert [p.value for p in callback.history.series("diag/data_leak_files")] == [1.0]


@pytest.mark.parametrize("dirs", [{"train": None, "val": None, "test": None}, None], ids=["synthetic", "no-dirs"])
def test_data_leak_check_says_nothing_without_folders(dirs: dict | None) -> None:
    callback = DataLeakCheck()
    callback.on_fit_start(FakeTrainer(datamodule=SimpleNamespace(dirs=dirs)), FakeModule())
    assert callback.history.tags() == [] and callback.alarms.active == {}


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="max_examples must be a positive integer, got 0"):
        DataLeakCheck(max_examples=0)
    with pytest.raises(ValueError, match="repeats must be a positive integer, got 0"):
        LossSpikes(repeats=0)


# ----------------------------------------------------------------------------------------------------- LossSpikes
def spiky_losses(count: int, spikes: list[int], seed: int = 0) -> list[dict[str, float]]:
    rng = random.Random(seed)
    steps = []
    for index in range(count):
        factor = 25.0 if index in spikes else 1.0
        steps.append({"loss_g": factor * (2.0 + rng.gauss(0, 0.05)), "loss_mel": 1.0 + rng.gauss(0, 0.02)})
    return steps


def feed(callback: LossSpikes, trainer: FakeTrainer, module: FakeModule, steps: list[dict[str, float]]) -> None:
    for batch_idx, values in enumerate(steps):
        outputs = {"losses": {name: torch.tensor(value) for name, value in values.items()}}
        callback.on_train_batch_end(trainer, module, outputs, None, batch_idx)
        trainer.advance()


def test_live_spikes_equal_the_offline_rule_over_a_run_longer_than_the_history() -> None:
    assert HISTORY_POINTS >= SPIKE_WINDOW + SPIKE_RECOVERY + 2  # the live judgement sees a full window
    steps = spiky_losses(HISTORY_POINTS + 200, spikes=[40, 300, HISTORY_POINTS + 150])
    callback, trainer, module = LossSpikes(), FakeTrainer(log_every_n_steps=1), FakeModule()
    offline = MetricHistory()
    for step, values in enumerate(steps):
        for name, value in values.items():
            offline.add(f"train/{name}", float(torch.tensor(value)), step=step, epoch=0)
    with pytest.warns(UserWarning, match="codecgan warning LOSS_SPIKE: 3 loss spikes"):
        feed(callback, trainer, module, steps)
    expected = [s.point.step for tag, points in loss_series(offline).items() for s in find_spikes(tag, points)]
    assert sorted(s.point.step for s in callback.spikes) == sorted(expected) == [40, 300, HISTORY_POINTS + 150]
    assert callback.alarms.active["LOSS_SPIKE"]["first_step"] == HISTORY_POINTS + 150
    assert spike_finding(callback.spikes) == loss_spike(offline)  # the alarm's finding is diagnose's
    assert module.last("diag/alarm/LOSS_SPIKE") == 1.0


def test_loss_spikes_resume_with_the_spikes_found_before(tmp_path: Path) -> None:
    steps = spiky_losses(200, spikes=[60, 120, 180])
    callback, trainer, module = LossSpikes(), FakeTrainer(log_every_n_steps=1), FakeModule()
    feed(callback, trainer, module, steps[:150])
    torch.save(callback.state_dict(), tmp_path / "state.pt")
    restored = LossSpikes()
    restored.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    assert same(restored.state_dict(), callback.state_dict()) and len(restored.spikes) == 2
    resumed_trainer = FakeTrainer(log_every_n_steps=1)
    resumed_trainer.fit_loop.epoch_loop._batches_that_stepped = 150
    with pytest.warns(UserWarning, match="LOSS_SPIKE: 3 loss spikes"):
        feed(restored, resumed_trainer, FakeModule(), steps[150:])
    assert [s.point.step for s in restored.spikes] == [60, 120, 180]


def test_a_batch_that_does_not_log_is_not_read() -> None:
    callback, trainer = LossSpikes(), FakeTrainer(log_every_n_steps=10)
    outputs = {"losses": {"loss_g": torch.tensor(float("nan"))}}
    callback.on_train_batch_end(trainer, FakeModule(), outputs, None, 0)  # batch 0 of 10: no logging step
    assert callback.history.tags() == []


# --------------------------------------------------------------------------------------------- LearningRateHealth
def test_learning_rate_health_judges_the_points_diagnose_reads(tmp_path: Path) -> None:
    """ExponentialLR(0.9) per batch on both networks, logging every 10 batches, validation every 100 with a mel
    distance that stops improving: the live alarm is the finding `codecgan diagnose` makes of the logged values."""
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizers = [torch.optim.SGD([parameter], lr=1e-3), torch.optim.SGD([parameter], lr=2e-3)]
    callback, module = LearningRateHealth(), FakeModule()
    trainer = FakeTrainer(log_every_n_steps=10, optimizers=optimizers)
    offline = MetricHistory()  # what the module and the validation loop log
    for round_index in range(8):
        for batch_idx in range(100):
            for optimizer in optimizers:
                optimizer.param_groups[0]["lr"] *= 0.9
            callback.on_train_batch_end(trainer, module, {}, None, batch_idx)
            if is_logging_step(trainer):
                for tag, optimizer in zip(("train/lr_g", "train/lr_d"), optimizers):
                    offline.add(tag, optimizer.param_groups[0]["lr"], logged_step(trainer), 0)
            trainer.advance()
        mel = 2.0 - 0.1 * min(round_index, 1)
        trainer.callback_metrics = {"val/loss_mel": torch.tensor(mel)}
        offline.add("val/loss_mel", float(torch.tensor(mel)), logged_step(trainer), 0)
        if round_index == 4:
            with pytest.warns(UserWarning, match=r"LR_VANISHED: train/lr_g was 7.1e-13 at epoch 0 \(step 200\)"):
                callback.on_validation_end(trainer, module)
            torch.save(callback.state_dict(), tmp_path / "state.pt")
        else:
            callback.on_validation_end(trainer, module)
    assert callback.alarms.active["LR_VANISHED"]["first_step"] == 500
    assert lr_vanished(callback.history) == lr_vanished(offline)  # live and offline, numbers and words alike
    assert len(callback.history.series("train/lr_g")) == 80  # a decaying rate changes at every logging step
    restored = LearningRateHealth()
    restored.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    assert restored.history.max_points is None and "LR_VANISHED" in restored.alarms.active


def test_a_constant_learning_rate_is_kept_once() -> None:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    callback, trainer = LearningRateHealth(), FakeTrainer(log_every_n_steps=2, optimizers=[optimizer])
    for batch_idx in range(20):
        callback.on_train_batch_end(trainer, FakeModule(), {}, None, batch_idx)
        trainer.advance()
    assert [(p.step, p.value) for p in callback.history.series("train/lr_g")] == [(1, 1e-3)]


# ------------------------------------------------------------------------------------------------- a real fit
def test_a_leak_is_alarmed_live_logged_and_reported_by_diagnose(tmp_path: Path, capsys) -> None:
    folders = leaky_folders(tmp_path)
    overlay = tiny_trainer_overlay(tmp_path / "run", max_steps=4, val_every=4, checkpoint_every=100)
    overlay["trainer"]["callbacks"] += [
        {"class_path": "callbacks.DataLeakCheck"},
        {"class_path": "callbacks.LossSpikes"},
        {"class_path": "callbacks.LearningRateHealth"},
    ]
    overlay["data"]["init_args"].update(
        train_dir=folders["train"], val_dir=folders["val"], val_crop_seconds=0.3, batch_size=2
    )
    config = write_overlay(tmp_path, "overlay.yaml", overlay)
    with pytest.warns(UserWarning, match="DATA_LEAK"):
        build_cli(["fit", "--config", str(EXPERIMENTS / "codec_tiny.yaml"), "--config", str(config)])
    [run] = [path.parent for path in (tmp_path / "run").rglob("events.out.tfevents*")]
    events = EventAccumulator(str(run), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("diag/data_leak_files")] == [(0, 1.0)]
    assert [(e.step, e.value) for e in events.Scalars("diag/alarm/DATA_LEAK")][0] == (0, 1.0)
    assert {"diag/data_leak/text_summary", "diag/alarms/text_summary"} <= set(events.Tags()["tensors"])
    assert {"train/lr_g", "train/lr_d"} <= set(events.Tags()["scalars"])
    capsys.readouterr()
    assert diagnose_main([str(tmp_path / "run"), "--json"]) == 0
    [leak] = [f for f in json.loads(capsys.readouterr().out) if f["code"] == "DATA_LEAK"]
    assert leak["severity"] == "warning" and leak["first_step"] == 0
    assert "1 validation or test file is also training data" in leak["evidence"]
