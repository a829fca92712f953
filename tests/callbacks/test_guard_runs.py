"""Live tiny fits with a diagnostic callback made to raise (codecgan/testing/callback_faults.py): the run goes on, in one
process and in two (gloo), and a ConfigError from a start-up hook still ends it with status 2."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from callbacks.guard import CALLBACK_ERRORS, DISABLED_TEXT_TAG, ERRORS_ENV
from codecgan.cli import main as codecgan_main
from codecgan.diagnosis.history import load_histories
from codecgan.lightning_cli import build_cli
from tests.conftest import EXPERIMENTS, run_codecgan, tiny_trainer_overlay, write_overlay


@pytest.fixture(autouse=True)
def errors_disable_callbacks(monkeypatch) -> None:
    monkeypatch.delenv(ERRORS_ENV, raising=False)  # the suite's default is "raise"; subprocesses inherit this


def fault(callback: str, step: int, **init_args) -> dict:
    return {"class_path": "codecgan.testing.callback_faults.RaiseInCallback", "init_args": {"callback": callback, "step": step,
            **init_args}}  # fmt: skip


def texts(run_dir: Path) -> list[tuple[int, str]]:
    [events_dir] = {path.parent for path in run_dir.rglob("events.out.tfevents.*")}
    accumulator = EventAccumulator(str(events_dir), size_guidance={"tensors": 0})
    accumulator.Reload()
    return [
        (e.step, e.tensor_proto.string_val[0].decode())
        for e in accumulator.Tensors(DISABLED_TEXT_TAG + "/text_summary")
    ]


def scalars(run_dir: Path, tag: str) -> list[tuple[int, float]]:
    [(_, history)] = load_histories(str(run_dir))
    return [(point.step, point.value) for point in history.series(tag)]


def test_one_process_run_finishes_with_the_failing_callback_disabled(tmp_path: Path, caplog) -> None:
    run_dir = tmp_path / "run"
    overlay = tiny_trainer_overlay(run_dir, max_steps=8, val_every=4, checkpoint_every=100)
    overlay["trainer"]["callbacks"] += [
        {"class_path": "callbacks.DiscriminatorHealth"},
        {"class_path": "callbacks.SignalStats"},
        fault("DiscriminatorHealth", step=3),  # a logging step
    ]
    config = write_overlay(tmp_path, "overlay.yaml", overlay)
    with caplog.at_level(logging.WARNING, logger="callbacks.guard"):
        trainer = build_cli(["fit", "--config", str(EXPERIMENTS / "codec_tiny.yaml"), "--config", str(config)]).trainer
    assert trainer.global_step == 8  # the run finished
    health = next(c for c in trainer.callbacks if type(c).__name__ == "DiscriminatorHealth")
    assert health.guard.disabled["failures"][0]["error"].startswith("RuntimeError: Injected failure")
    [record] = [r for r in caplog.records if "DiscriminatorHealth" in r.message]  # once, not at every step
    assert "DiscriminatorHealth failed in on_train_batch_end at step 3 on rank 0" in record.message
    assert "RuntimeError: Injected failure" in record.message and "Traceback" in record.message
    assert scalars(run_dir, CALLBACK_ERRORS) == [(3, 1.0)]
    [(step, text)] = texts(run_dir)
    assert step == 3 and "**DiscriminatorHealth** is disabled" in text and "Injected failure" in text
    assert [step for step, _ in scalars(run_dir, "diag/d_loss_to_chance")] == [1]  # nothing after it failed
    assert [step for step, _ in scalars(run_dir, "val/snr_db")] == [3, 7]  # the others keep working


def test_a_config_error_from_a_start_up_hook_still_ends_the_run_with_status_2(tmp_path: Path, capsys) -> None:
    overlay = tiny_trainer_overlay(tmp_path / "run", max_steps=2, val_every=100, checkpoint_every=100)
    overlay["trainer"]["callbacks"] += [
        {"class_path": "callbacks.DataLeakCheck"},
        fault("DataLeakCheck", step=0, hook="on_fit_start", error="ConfigError"),
    ]
    config = write_overlay(tmp_path, "overlay.yaml", overlay)
    with pytest.raises(SystemExit) as exit_info:
        codecgan_main(["fit", "--config", str(EXPERIMENTS / "codec_tiny.yaml"), "--config", str(config)])
    assert exit_info.value.code == 2
    assert "codecgan: Injected failure in DataLeakCheck.on_fit_start" in capsys.readouterr().err


@pytest.mark.slow
def test_two_process_run_finishes_when_callbacks_raise_on_one_rank(tmp_path: Path) -> None:
    """Rank 1 raises in DiscriminatorHealth at a logging step before its collective, and in CodebookUsage at a
    batch where it does no collective; rank 0 raises in SignalStats after its validation collective."""
    run_dir = tmp_path / "run"
    overlay = tiny_trainer_overlay(run_dir, max_steps=8, val_every=4, checkpoint_every=100)
    overlay["trainer"].update(devices=2, strategy="gan_ddp")
    overlay["trainer"]["callbacks"] += [
        {"class_path": "callbacks.DiscriminatorHealth"},
        {"class_path": "callbacks.CodebookUsage", "init_args": {"window_steps": 2}},
        {"class_path": "callbacks.SignalStats"},
        {"class_path": "callbacks.RankConsistency", "init_args": {"every_n_steps": 2}},
        {"class_path": "callbacks.EvalDeterminism"},  # logs epoch values (no sync_dist) at the second validation
        fault("DiscriminatorHealth", step=3, rank=1),
        fault("CodebookUsage", step=2, rank=1),  # its windows close at steps 1, 3, 5, 7
        fault("SignalStats", step=3, rank=0, hook="on_validation_epoch_end", after=True),  # the first validation
    ]
    stderr = run_codecgan("fit", "codec_tiny.yaml", tmp_path, "ddp", overlay).stderr
    moments = [  # callback, the hook, the step and rank that raised, when to disable
        ("DiscriminatorHealth", "on_train_batch_end", 3, 1, "now"),
        ("CodebookUsage", "on_train_batch_end", 2, 1, "at its next synchronisation point"),
        ("SignalStats", "on_validation_epoch_end", 3, 0, "now"),
    ]
    for callback, hook, step, rank, when in moments:  # the rank that raised logs its traceback, the other a line
        assert (
            f"{callback} failed in {hook} at step {step} on rank {rank}; it is disabled on every rank {when}" in stderr
        )
        assert f"{callback} is disabled on every rank at step 3: rank {rank} failed in {hook} at step {step}" in stderr
    assert stderr.count("Traceback (most recent call last)") == 3
    assert scalars(run_dir, CALLBACK_ERRORS) == [(3, 1.0), (3, 2.0), (3, 3.0)]
    entries = texts(run_dir)
    assert [step for step, _ in entries] == [3, 3, 3]
    assert "**DiscriminatorHealth** is disabled on every rank at step 3: rank 1 failed" in entries[0][1]
    assert "**SignalStats** is disabled on every rank at step 3: rank 0 failed" in entries[2][1]
    # The replicas stay identical, and the callbacks not made to fail kept measuring to the end.
    assert scalars(run_dir, "diag/rank_param_spread/generator") == [(1, 0.0), (3, 0.0), (5, 0.0), (7, 0.0)]
    assert scalars(run_dir, "diag/eval_input_changed") == [(7, 0.0)]
    assert "It is recommended to use `self.log(" not in stderr  # epoch values alike on every rank: no sync_dist
