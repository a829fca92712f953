"""The guard (callbacks/guard.py): a diagnostic callback that raises is disabled and reported, never ends the run."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from lightning.pytorch.loggers import TensorBoardLogger

import callbacks.gradient_balance
import callbacks.loss_spikes
from callbacks import GradientBalance, LossSpikes
from callbacks.base import DiagnosticCallback
from callbacks.distributed import reduce_sum
from callbacks.guard import CALLBACK_ERRORS, DISABLED_STATE_KEY, DISABLED_TEXT_TAG, ERRORS_ENV
from callbacks.sync_moments import CollectiveOutsideSyncMoment
from codecgan.cadence import logged_step
from codecgan.config_error import ConfigError
from tests.callbacks.callback_fakes import FakeModule, FakeTrainer
from tests.callbacks.test_alarms_and_media import read
from tests.conftest import ROOT


@pytest.fixture(autouse=True)
def errors_disable_callbacks(monkeypatch) -> None:
    monkeypatch.delenv(ERRORS_ENV, raising=False)  # the suite's default is "raise"


class Flaky(DiagnosticCallback):
    """Raises `error` in on_train_batch_end at step `fail_at`; logs diag/flaky at every other step."""

    def __init__(self, fail_at: int = 2, error: type[Exception] = RuntimeError, hook: str = "batch") -> None:
        super().__init__()
        self.fail_at, self.error, self.hook, self.calls = fail_at, error, hook, 0

    def on_fit_start(self, trainer, pl_module) -> None:
        if self.hook == "fit_start":
            raise self.error("bad setting at start")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.calls += 1
        if self.hook == "batch" and logged_step(trainer) == self.fail_at:
            raise self.error("boom")
        self._record(trainer, pl_module, {"diag/flaky": 1.0})


def losses(step: int) -> dict:
    return {"losses": {"loss_g": torch.tensor(1.0 + step)}}


def run_batches(trainer: FakeTrainer, module: FakeModule, steps: int) -> None:
    for step in range(steps):
        for callback in trainer.callbacks:
            callback.on_train_batch_end(trainer, module, losses(step), None, step)
        trainer.advance()


def test_a_failing_hook_disables_its_callback_reports_once_and_spares_the_others(tmp_path: Path, caplog) -> None:
    logger = TensorBoardLogger(str(tmp_path), name="run", version=0)
    trainer, module = FakeTrainer(loggers=[logger]), FakeModule()
    flaky, spikes = Flaky(fail_at=2), LossSpikes()
    trainer.callbacks = [flaky, spikes]
    with caplog.at_level(logging.WARNING, logger="callbacks.guard"):
        run_batches(trainer, module, steps=5)
    assert flaky.calls == 3  # steps 0, 1, 2: never called again
    [failure] = flaky.guard.disabled["failures"]
    assert failure["rank"] == 0 and failure["step"] == 2 and failure["hook"] == "on_train_batch_end"
    assert failure["error"] == "RuntimeError: boom" and 'raise self.error("boom")' in failure["traceback"]
    [record] = caplog.records  # reported once, with the traceback
    assert "Flaky failed in on_train_batch_end at step 2 on rank 0; it is disabled for the rest" in record.message
    assert "Traceback (most recent call last)" in record.message and "RuntimeError: boom" in record.message
    assert [value for name, value, _ in module.logged if name == "diag/flaky"] == [1.0, 1.0]
    assert len(spikes.history.series("train/loss_g")) == 5  # the other callback kept working
    events = read(logger)
    assert [(e.step, e.value) for e in events.Scalars(CALLBACK_ERRORS)] == [(2, 1.0)]
    [text] = events.Tensors(DISABLED_TEXT_TAG + "/text_summary")
    entry = text.tensor_proto.string_val[0].decode()
    assert "**Flaky** is disabled at step 2: rank 0 failed in on_train_batch_end" in entry
    assert "RuntimeError: boom" in entry
    assert "Traceback" in entry and text.step == 2


def test_an_exception_in_a_diagnosis_rule_is_caught_like_one_in_a_hook(monkeypatch, caplog) -> None:
    def broken_rule(*args, **kwargs):
        raise ZeroDivisionError("rule divided by zero")

    monkeypatch.setattr(callbacks.loss_spikes, "spike_finding", broken_rule)
    trainer, module = FakeTrainer(), FakeModule()
    spikes, flaky = LossSpikes(), Flaky(fail_at=99)
    trainer.callbacks = [spikes, flaky]
    with caplog.at_level(logging.WARNING, logger="callbacks.guard"):
        run_batches(trainer, module, steps=3)
    assert spikes.guard.disabled["failures"][0]["error"] == "ZeroDivisionError: rule divided by zero"
    assert "in broken_rule" in spikes.guard.disabled["failures"][0]["traceback"]
    assert len(spikes.history.series("train/loss_g")) == 1 and flaky.calls == 3
    assert len(caplog.records) == 1


def test_a_disabled_gradient_balance_stops_the_module_measuring_term_gradients(monkeypatch) -> None:
    def broken_rule(*args, **kwargs):
        raise ValueError("no shares")

    monkeypatch.setattr(callbacks.gradient_balance, "gan_term_negligible", broken_rule)
    module = FakeModule()
    trainer = FakeTrainer(lightning_module=module)
    balance = GradientBalance(every_n_steps=1)
    balance.on_fit_start(trainer, module)
    assert module.term_gradient_interval == 1
    balance.on_train_batch_end(trainer, module, {"term_grad_norms": {"loss_adv": torch.tensor(1.0)}}, None, 0)
    assert balance.guard.disabled is not None and module.term_gradient_interval == 0


def test_a_config_error_from_a_start_up_hook_ends_the_run_but_not_from_a_later_one() -> None:
    trainer, module = FakeTrainer(), FakeModule()
    with pytest.raises(ConfigError, match="bad setting at start"):
        Flaky(error=ConfigError, hook="fit_start").on_fit_start(trainer, module)
    later = Flaky(fail_at=0, error=ConfigError)
    later.on_train_batch_end(trainer, module, {}, None, 0)
    assert later.guard.disabled["failures"][0]["error"] == "ConfigError: boom"


def test_errors_end_the_run_when_the_environment_says_raise(monkeypatch) -> None:
    monkeypatch.setenv(ERRORS_ENV, "raise")
    with pytest.raises(RuntimeError, match="boom"):
        Flaky(fail_at=0).on_train_batch_end(FakeTrainer(), FakeModule(), {}, None, 0)


def test_a_disabled_callback_saves_why_and_a_resumed_run_restarts_it_saying_so(tmp_path: Path) -> None:
    trainer, module = FakeTrainer(), FakeModule()
    flaky = Flaky(fail_at=1)
    trainer.callbacks = [flaky]
    run_batches(trainer, module, steps=3)
    torch.save(flaky.state_dict(), tmp_path / "state.pt")
    state = torch.load(tmp_path / "state.pt", weights_only=True)
    assert state[DISABLED_STATE_KEY]["step"] == 1
    assert state[DISABLED_STATE_KEY]["failures"][0]["error"] == "RuntimeError: boom"
    resumed = Flaky(fail_at=99)
    with pytest.warns(UserWarning, match=r"Flaky was disabled in the run this checkpoint comes from \(rank 0 failed "
                      r"in on_train_batch_end at step 1 \(RuntimeError: boom\)\); it starts again here"):  # fmt: skip
        resumed.load_state_dict(state)
    assert resumed.guard.disabled is None and resumed.history.series("diag/flaky") == []
    resumed.on_train_batch_end(trainer, module, {}, None, 3)
    assert resumed.calls == 1


def test_a_failing_state_dict_or_load_state_dict_disables_the_callback_at_its_next_hook() -> None:
    class BadState(Flaky):
        def state_dict(self):
            raise KeyError("unsaveable")

    trainer, module = FakeTrainer(), FakeModule()
    bad = BadState(fail_at=99)
    bad.on_train_batch_end(trainer, module, {}, None, 0)
    assert DISABLED_STATE_KEY in bad.state_dict()
    bad.on_train_batch_end(trainer, module, {}, None, 1)  # disabled here, in one process
    assert bad.calls == 1 and bad.guard.disabled["failures"][0]["hook"] == "state_dict"
    unloadable = Flaky(fail_at=99)
    unloadable.load_state_dict({"alarms": {}})  # no history: a KeyError in the body
    unloadable.on_train_batch_end(trainer, module, {}, None, 0)
    assert unloadable.calls == 0 and unloadable.guard.disabled["failures"][0]["hook"] == "load_state_dict"


def test_a_collective_outside_the_declared_sync_moments_is_refused(monkeypatch) -> None:
    class Undeclared(DiagnosticCallback):
        def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
            reduce_sum(trainer, torch.ones(1))

    monkeypatch.setenv(ERRORS_ENV, "raise")
    with pytest.raises(CollectiveOutsideSyncMoment, match="Undeclared.on_validation_batch_end attempted a collective"):
        Undeclared().on_validation_batch_end(FakeTrainer(world_size=2), FakeModule(), {}, None, 0)


@pytest.mark.slow
def test_two_ranks_stop_together_wherever_a_hook_raises(tmp_path: Path) -> None:
    """Two gloo processes (tests/callbacks/guard_vote_script.py): failures before, between and after a sync
    moment's collectives, outside sync moments, and on both ranks; the collectives stay paired."""
    env = {key: value for key, value in os.environ.items() if key != ERRORS_ENV}
    env.update(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    script = ROOT / "tests" / "callbacks" / "guard_vote_script.py"
    result = subprocess.run(
        [sys.executable, str(script), str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    expected_failing = {
        "sync_start_rank1": [1],
        "sync_between_rank1": [1],
        "sync_end_rank0": [0],
        "non_sync_rank1": [1],
        "both_ranks_before_one_vote": [0, 1],
        "rank0_after_rank1s_vote": [1],  # rank 0 stops at the vote before its second collective, before it raises
        "both_ranks_non_sync": [0, 1],
        "non_sync_rank1_then_sync_rank0": [1],
    }
    for scenario, failing in expected_failing.items():
        on_rank = [results[scenario] for results in ranks]
        assert on_rank[0]["disabled"] == on_rank[1]["disabled"], scenario  # the same record on both ranks
        assert on_rank[0]["disabled"]["step"] == 3, scenario  # the sync moment at or after the failure
        assert [f["rank"] for f in on_rank[0]["disabled"]["failures"]] == failing, scenario
        for result in on_rank:
            assert result["canary_ok"] and not result["healthy_disabled"], scenario
            assert result["healthy_results"] == [[2.0, 2.0, 3.0, 6.0]] * 6, scenario  # every step, both ranks
            completed = 2 if scenario == "sync_end_rank0" else 1  # sync moments whose collectives completed
            assert len(result["failing_results"]) == completed, scenario
