"""Resume: every callback's state survives torch.save / torch.load(weights_only=True) exactly, and a restored
callback continues its windows and alarms as the original does."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any, Callable

import pytest
import torch

from callbacks import (
    AudioSamples,
    CodebookUsage,
    DiscriminatorHealth,
    DivergenceMonitor,
    EvalDeterminism,
    GradientBalance,
    MetricDiscriminatorMonitor,
    PesqHealth,
    SignalStats,
)
from tests.callbacks.callback_fakes import FakeModule, FakeTrainer, same, validation_round


def train_output(step: int) -> dict:
    """One enhancement-and-codec step with values that vary by step, some of them failures."""
    g = torch.Generator().manual_seed(step)
    target = torch.rand(4, generator=g)
    target[step % 4] = math.nan if step % 3 == 0 else target[step % 4]
    return {
        "loss": torch.tensor(1.0 / (step + 1)),
        "losses": {
            "loss_g": torch.tensor(1.0 / (step + 1)),
            "loss_d": torch.tensor(1.99),
            "loss_fm": torch.tensor(0.01),
        },
        "d_stepped": True,
        "d_real": torch.tensor(0.01),
        "d_fake": torch.tensor(0.0),
        "d_loss_chance": 2.0,
        "grad_norm_d": torch.tensor(0.3),
        "pesq_dropped_batch": int(step % 3 == 0),
        "pesq_clips": 4,
        "pesq_failed_clips": int(step % 3 == 0),
        "metric_d_prediction": torch.full((4,), 0.5),
        "pesq_target": target,
        "term_grad_norms": {"loss_mel": torch.tensor(5.0), "loss_adv": torch.tensor(0.01)},
        "codes": torch.randint(0, 8, (2, 2, 10), generator=g),
        "codebook_size": 8,
        "length": torch.full((2,), 40),
        "estimate": torch.zeros(2, 1, 40),
    }


def validation_output(round_: int) -> list[dict]:
    g = torch.Generator().manual_seed(round_)
    audio = torch.randn(3, 1, 64, generator=g)
    return [
        {
            "estimate": -audio,
            "reference": audio,
            "input": audio,
            "length": torch.full((3,), 64),
            "index": torch.arange(3),
            "metric_d_prediction": torch.rand(3, generator=g),
            "pesq": torch.tensor([2.0, 3.0, math.nan]),
        }
    ]


def drive(callback: Any, trainer: FakeTrainer, module: FakeModule, steps: range) -> None:
    """Training steps with a validation round and an epoch end every 5 steps."""
    for step in steps:
        callback.on_train_batch_end(trainer, module, train_output(step), None, step)
        trainer.advance()
        if step % 5 == 4:
            trainer.callback_metrics = {"val/pesq": torch.tensor(3.0 - 0.2 * abs(step - 9) / 5)}
            if hasattr(callback, "on_validation_batch_end"):
                validation_round(callback, trainer, module, validation_output(step // 5))
            if hasattr(callback, "on_validation_end"):
                callback.on_validation_end(trainer, module)
            callback.on_train_epoch_end(trainer, module)
            trainer.current_epoch += 1


FACTORIES: list[Callable[[], Any]] = [
    PesqHealth,
    MetricDiscriminatorMonitor,
    SignalStats,
    DiscriminatorHealth,
    lambda: GradientBalance(every_n_steps=2),
    EvalDeterminism,
    lambda: DivergenceMonitor(min_drop=0.05),
    lambda: CodebookUsage(window_steps=3),
    AudioSamples,
]


@pytest.mark.parametrize("factory", FACTORIES, ids=lambda f: getattr(f, "__name__", "callback"))
def test_state_survives_a_weights_only_checkpoint_and_continues_exactly(
    factory: Callable[[], Any], tmp_path: Path
) -> None:
    warnings.simplefilter("ignore", UserWarning)  # alarms are tested elsewhere
    original, trainer, module = factory(), FakeTrainer(log_every_n_steps=2), FakeModule()
    drive(original, trainer, module, range(0, 13))  # stops mid-interval, mid-window and mid-epoch
    before = original.state_dict()
    torch.save({"callbacks": {original.state_key: before}}, tmp_path / "ckpt.pt")
    loaded = torch.load(tmp_path / "ckpt.pt", weights_only=True)["callbacks"][original.state_key]
    restored = factory()
    restored.load_state_dict(loaded)
    assert same(restored.state_dict(), before)

    resumed_trainer = FakeTrainer(log_every_n_steps=2)
    resumed_trainer.fit_loop.epoch_loop._batches_that_stepped = trainer.fit_loop.epoch_loop._batches_that_stepped
    resumed_trainer.global_step, resumed_trainer.current_epoch = trainer.global_step, trainer.current_epoch
    drive(original, trainer, module, range(13, 30))
    drive(restored, resumed_trainer, FakeModule(), range(13, 30))
    assert same(restored.state_dict(), original.state_dict())
