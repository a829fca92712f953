"""Alarms, audio samples and the dashboard written to a real TensorBoard log."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from callbacks import AudioSamples, DiagnosticsDashboard
from callbacks.alarms import AlarmBook
from codecgan.diagnosis import Finding
from codecgan.diagnosis.trends import as_info
from tests.callbacks.callback_fakes import FakeModule, FakeTrainer, validation_round


def read(logger: TensorBoardLogger) -> EventAccumulator:
    logger.experiment.flush()
    accumulator = EventAccumulator(logger.log_dir, size_guidance={"scalars": 0, "tensors": 0, "images": 0, "audio": 0})
    accumulator.Reload()
    return accumulator


def negative_snr_finding() -> Finding:
    episode = [{"snr_db": -2.5, "at": {"epoch": 0, "step": 5}}, {"snr_db": -2.44, "at": {"epoch": 1, "step": 7}}]
    values = {"threshold_db": 0.0, "patience": 2, "episode": episode, "last_snr_db": -2.44, "si_sdr_db": None}
    return Finding("NEGATIVE_SNR", "warning", 7, 1, {**values, "dc_offset": None, "dc_offset_at": None})


def test_alarm_starts_once_with_warning_text_and_scalar(tmp_path: Path) -> None:
    logger = TensorBoardLogger(str(tmp_path), name="run", version=0)
    trainer, module, book = FakeTrainer(loggers=[logger]), FakeModule(), AlarmBook()
    finding = negative_snr_finding()
    trainer.fit_loop.epoch_loop._batches_that_stepped = 7
    message = r"codecgan warning NEGATIVE_SNR: val/snr_db was below 0 dB .* -2.44 dB at epoch 1 \(step 7\).* To confirm"
    with pytest.warns(UserWarning, match=message):
        assert book.update(trainer, [finding, None]) == [finding]
    assert book.update(trainer, [finding]) == []  # already active: no second announcement
    assert book.update(trainer, [Finding("PESQ_NONE_HIGH", "info", 1, 0)]) == []
    book.log_active(module)
    assert module.logged == [
        ("diag/alarm/NEGATIVE_SNR", 1.0, {"on_step": True, "on_epoch": False, "sync_dist": False, "batch_size": 1})
    ]
    events = read(logger)
    assert [(e.step, e.value) for e in events.Scalars("diag/alarm/NEGATIVE_SNR")] == [(7, 1.0)]
    assert "diag/alarms/text_summary" in events.Tags()["tensors"]


def test_an_alarm_clears_when_its_finding_settles_and_can_start_again(tmp_path: Path, caplog) -> None:
    logger = TensorBoardLogger(str(tmp_path), name="run", version=0)
    trainer, module, book = FakeTrainer(loggers=[logger]), FakeModule(), AlarmBook()
    warning = negative_snr_finding()
    settled = as_info(warning, "cleared", last_held=None, patience=2)
    steps_and_findings = [
        (7, {"NEGATIVE_SNR": warning}),
        (8, [None]),  # a plain list names no code for None: nothing clears
        (9, {"NEGATIVE_SNR": settled}),
        (11, {"NEGATIVE_SNR": None}),  # already cleared: nothing more is written
        (13, [warning]),
        (15, [dataclasses.replace(warning, severity="critical")]),
    ]
    started = []
    with pytest.warns(UserWarning, match="NEGATIVE_SNR") as warned, caplog.at_level(logging.INFO):
        for step, findings in steps_and_findings:
            trainer.fit_loop.epoch_loop._batches_that_stepped = step
            started += book.update(trainer, findings)
            if step == 9:
                assert book.active == {} and book.cleared["NEGATIVE_SNR"]["started_step"] == 7
                book.log_active(module)
    assert started == [warning, warning]  # started at 7 and again at 13
    assert "now critical (was warning)" in str(warned[-1].message)
    assert "codecgan NEGATIVE_SNR (warning, active since step 7) cleared at step 9 (epoch 0): val/snr_db" in caplog.text
    assert book.active["NEGATIVE_SNR"]["severity"] == "critical" and book.active["NEGATIVE_SNR"]["step"] == 13
    assert module.logged[0][:2] == ("diag/alarm/NEGATIVE_SNR", 0.0)  # a cleared alarm is logged as 0, not left out
    events = read(logger)
    assert [(e.step, e.value) for e in events.Scalars("diag/alarm/NEGATIVE_SNR")] == [(7, 1), (9, 0), (13, 1), (15, 1)]
    texts = [e.tensor_proto.string_val[0].decode() for e in events.Tensors("diag/alarms/text_summary")]
    assert texts[1].startswith("**NEGATIVE_SNR** (warning, active since step 7) cleared at step 9 (epoch 0): val/")
    assert "It has cleared since, so it is reported as info." in texts[1] and len(texts) == 4
    torch.save(book.state_dict(), tmp_path / "alarms.pt")
    restored = AlarmBook()
    restored.load_state_dict(torch.load(tmp_path / "alarms.pt", weights_only=True))
    assert restored.state_dict() == book.state_dict() and restored.cleared == {}


def test_audio_samples_write_fixed_items_with_spectrograms(tmp_path: Path) -> None:
    logger = TensorBoardLogger(str(tmp_path), name="run", version=0)
    callback, trainer, module = AudioSamples(sample_rate=8000, n_items=2), FakeTrainer(loggers=[logger]), FakeModule()
    audio = 0.1 * torch.randn(3, 1, 2000, generator=torch.Generator().manual_seed(0))
    batch = {
        "estimate": audio,
        "reference": audio,
        "input": audio,
        "length": torch.tensor([2000, 1500, 2000]),
        "index": torch.tensor([5, 6, 7]),
    }
    validation_round(callback, trainer, module, [batch])
    trainer.advance()
    validation_round(callback, trainer, module, [{**batch, "index": torch.tensor([7, 6, 5])}])
    assert callback.indices == [5, 6] and callback.rounds_written == 2
    events = read(logger)
    assert {"audio/item5/reference", "audio/item6/estimate"} <= set(events.Tags()["audio"])
    assert "audio/item7/input" not in events.Tags()["audio"]
    assert len(events.Images("spectrogram/item6")) == 2


def test_dashboard_registers_the_layout_on_rank_zero(tmp_path: Path) -> None:
    logger = TensorBoardLogger(str(tmp_path), name="run", version=0)
    DiagnosticsDashboard().on_fit_start(FakeTrainer(loggers=[logger]), FakeModule())
    assert "custom_scalars__config__" in read(logger).Tags()["tensors"]
