"""Every shipped callback performs collectives only in the hook invocations its `sync_moments` declare, and what the
guard's votes add to them (callbacks/guard.py), counted on a fake two-rank strategy."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import torch

import callbacks
from callbacks import sync_moments
from callbacks.guard import HOOKS, GuardedCallback
from tests.callbacks.callback_fakes import FakeModule, FakeStrategy, FakeTrainer

LOG_EVERY, STEPS, VALIDATE_AFTER = 2, 8, (3, 7)


class CountingStrategy(FakeStrategy):
    """A two-rank fake that records every collective: (callback, hook, step, kind, elements, in a sync moment)."""

    def __init__(self, trainer_steps: list[int]) -> None:
        super().__init__(world_size=2)
        self.step = trainer_steps
        self.voting = False  # set by the test's wrapper of the guard's vote
        self.calls: list[tuple[str, str, int, str, int, bool]] = []

    def _record(self, kind: str, elements: int) -> None:
        invocation = sync_moments.current.get()
        name, hook, sync = (invocation.callback, invocation.hook, invocation.sync) if invocation else ("-", "-", False)
        self.calls.append((name, hook, self.step[0], "vote" if self.voting else kind, elements, sync))

    def reduce(self, tensor: torch.Tensor, reduce_op: str = "mean") -> torch.Tensor:
        self._record("all_reduce", tensor.numel())
        return super().reduce(tensor, reduce_op)

    def all_gather(self, tensor: torch.Tensor) -> torch.Tensor:
        self._record("all_gather", tensor.numel())
        return super().all_gather(tensor)

    def broadcast(self, value: Any, src: int = 0) -> Any:
        self._record("broadcast", 1)
        return value

    def reduce_boolean_decision(self, decision: bool, all: bool = True) -> bool:
        self._record("all_reduce", 1)
        return super().reduce_boolean_decision(decision, all)


def train_outputs(step: int) -> dict[str, Any]:
    losses = {name: torch.tensor(value) for name, value in [("loss_g", 1.0 + step / 100), ("loss_d", 0.5),
              ("loss_fm", 0.2), ("loss_adv", 0.1), ("loss_mel", 3.0)]}  # fmt: skip
    outputs = {
        "loss": losses["loss_g"],
        "losses": losses,
        "d_stepped": True,
        "d_real": torch.tensor(0.6),
        "d_fake": torch.tensor(0.4),
        "d_loss_chance": torch.tensor(0.5),
        "grad_norm_d": torch.tensor(1.0),
        "codes": torch.randint(0, 16, (2, 2, 5)),
        "codebook_size": 16,
        "length": torch.tensor([80, 80]),
        "estimate": torch.zeros(2, 1, 80),
        "pesq_dropped_batch": 0,
        "pesq_clips": 2,
        "pesq_failed_clips": 0,
        "metric_d_prediction": torch.rand(2),
        "pesq_target": torch.rand(2),
    }
    if step % 2 == 0:  # GradientBalance(every_n_steps=2) sets the module to measure on these steps
        outputs["term_grad_norms"] = {"loss_mel": torch.tensor(1.0), "loss_adv": torch.tensor(0.1)}
    return outputs


def validation_outputs() -> dict[str, Any]:
    audio = torch.randn(3, 2, 1, 80)
    return {
        "index": torch.tensor([0, 1]),
        "length": torch.tensor([80, 80]),
        "input": audio[0],
        "reference": audio[1],
        "estimate": audio[2],
        "metric_d_prediction": torch.rand(2),
        "pesq": torch.tensor([2.0, 2.5]),
    }


def every_callback() -> list[GuardedCallback]:
    return [
        callbacks.SignalStats(),
        callbacks.DiscriminatorHealth(),
        callbacks.GradientBalance(every_n_steps=2),
        callbacks.EvalDeterminism(),
        callbacks.RankConsistency(every_n_steps=2),
        callbacks.DivergenceMonitor(metric="val/snr_db", action="stop"),
        callbacks.LossSpikes(),
        callbacks.LearningRateHealth(),
        callbacks.DataLeakCheck(),
        callbacks.ResumeContinuity(),
        callbacks.CodebookUsage(window_steps=2),
        callbacks.AudioSamples(n_items=1),
        callbacks.DiagnosticsDashboard(),
        callbacks.PesqHealth(),
        callbacks.MetricDiscriminatorMonitor(),
    ]


def fake_two_rank_fit() -> tuple[CountingStrategy, list[GuardedCallback]]:
    """Drive every callback through a fit of STEPS batches with validations after VALIDATE_AFTER, as Lightning calls
    the hooks (global_step one ahead of the batch at its end), on a fake two-rank strategy."""
    step = [0]
    strategy = CountingStrategy(step)
    trainer = FakeTrainer(log_every_n_steps=LOG_EVERY, world_size=2, strategy=strategy, datamodule=None, ckpt_path=None)
    trainer.optimizers = [torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)] * 2
    trainer.callbacks, module = every_callback(), FakeModule()

    def call(hook: str, *args: Any) -> None:
        for callback in trainer.callbacks:
            getattr(callback, hook)(trainer, module, *args)

    call("on_fit_start")
    call("on_train_start")
    for batch in range(STEPS):
        step[0] = trainer.fit_loop.epoch_loop._batches_that_stepped = batch
        call("on_train_batch_start", None, batch)
        trainer.global_step = batch + 1
        call("on_train_batch_end", train_outputs(batch), None, batch)
        if batch in VALIDATE_AFTER:
            step[0] = batch + 1  # Lightning validates once the batch counter has advanced
            trainer.fit_loop.epoch_loop._batches_that_stepped = batch + 1
            call("on_validation_epoch_start")
            for index in range(2):
                call("on_validation_batch_end", validation_outputs(), None, index)
            call("on_validation_epoch_end")
            trainer.callback_metrics = {"val/snr_db": torch.tensor(5.0)}
            call("on_validation_end")
    call("on_train_epoch_end")
    call("on_train_end")
    return strategy, trainer.callbacks


@pytest.fixture(autouse=True)
def marked_votes(monkeypatch) -> None:
    real_vote = sync_moments.vote

    def vote(trainer, failed: bool) -> bool:
        trainer.strategy.voting = True
        try:
            return real_vote(trainer, failed)
        finally:
            trainer.strategy.voting = False

    monkeypatch.setattr(sync_moments, "vote", vote)


def test_every_collective_of_every_callback_is_in_a_declared_sync_moment() -> None:
    strategy, fitted = fake_two_rank_fit()
    assert not [c for c in fitted if c.guard.disabled is not None]
    outside = [call for call in strategy.calls if not call[5]]
    assert outside == []
    # Each callback's collectives (votes included) by hook; the body's own collectives as well, so that a callback
    # that stopped reaching its collectives in this fake fails here instead of passing by doing nothing.
    body = Counter((name, hook) for name, hook, _, _, elements, _ in strategy.calls)
    for name in ("SignalStats", "DiscriminatorHealth", "GradientBalance", "EvalDeterminism", "RankConsistency",
                 "DivergenceMonitor", "CodebookUsage", "PesqHealth", "MetricDiscriminatorMonitor"):  # fmt: skip
        assert any(n == name for n, _ in body), f"{name} performed no collective"


def body_and_votes(calls: list[tuple]) -> tuple[int, int]:
    votes = sum(call[3] == "vote" for call in calls)
    return len(calls) - votes, votes


def test_what_the_votes_add_per_logging_step_and_per_validation() -> None:
    strategy, _ = fake_two_rank_fit()
    # Batch 1 logs and closes RankConsistency's and CodebookUsage's windows. Its collectives: DiscriminatorHealth 2,
    # DivergenceMonitor 3 (sums, rank 0's losses, the stop decision), RankConsistency, CodebookUsage, PesqHealth and
    # MetricDiscriminatorMonitor 1 each; a vote before each and an exit vote for each of those 6 callbacks.
    assert body_and_votes([call for call in strategy.calls if call[2] == 1]) == (9, 9 + 6)
    # A validation: EvalDeterminism 2 (gather_rows), SignalStats, MetricDiscriminatorMonitor and DivergenceMonitor's
    # stop decision 1 each; votes: one per collective, the exit votes of the 3 that reduce at the epoch's end, and
    # one in every callback's on_validation_end (15: a failure in a callback without collectives is agreed on there).
    validation = [call for call in strategy.calls if call[2] == 4 and call[1] != "on_train_batch_end"]
    assert body_and_votes(validation) == (5, 5 + 3 + 15)
    # A batch that neither logs nor closes a window: only GradientBalance, which measures every 2 batches here.
    assert {call[0] for call in strategy.calls if call[2] == 2} == {"GradientBalance"}
    assert body_and_votes([call for call in strategy.calls if call[2] == 2]) == (1, 2)


def test_every_hook_of_every_shipped_callback_is_guarded() -> None:
    for name in callbacks.__all__:
        cls = getattr(callbacks, name)
        if not isinstance(cls, type) or not issubclass(cls, torch.nn.Module.__mro__[-1]) or name == "AlarmBook":
            continue
        assert issubclass(cls, GuardedCallback), name
        for hook in (*HOOKS, "state_dict", "load_state_dict"):
            defined = any(hook in vars(base) for base in cls.__mro__ if base.__module__.startswith("callbacks"))
            if defined or hook in cls.sync_moments:
                assert hasattr(getattr(cls, hook), "guarded_body"), f"{name}.{hook} is not guarded"
        assert {"on_validation_end", "on_train_end"} <= set(cls.sync_moments), name
