"""ResumeContinuity: records each resume, judges it a few logging steps later, keeps its state across checkpoints;
and real tiny-codec resumes, one exact and one with the generator's learning rate ×30, read back by `codecgan
diagnose`. About 35 s on a busy 2-core VM (four short fits: 24, 12, 6 and 8 batches)."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
import torch

from callbacks import ResumeContinuity
from codecgan.diagnosis.cli import diagnose_main
from codecgan.diagnosis.history import load_histories
from codecgan.lightning_cli import build_cli
from tests.callbacks.callback_fakes import FakeModule, FakeTrainer, same
from tests.conftest import EXPERIMENTS, tiny_trainer_overlay, write_overlay

EVERY = 10


def outputs(step: int, loss_factor: float = 1.0) -> dict:
    """A training step's outputs: noisy losses that fall slowly, the discriminator stepping on every batch."""
    rng = random.Random(step)
    return {
        "losses": {
            "loss_g": torch.tensor(loss_factor * (3.0 - step / 1000 + rng.gauss(0, 0.05))),
            "loss_d": torch.tensor(2.0 + rng.gauss(0, 0.05)),
        },
        "d_stepped": True,
    }


def feed(callback: ResumeContinuity, trainer: FakeTrainer, module: FakeModule, steps: range, factor: float = 1.0):
    for step in steps:
        callback.on_train_batch_start(trainer, module, None, step)
        callback.on_train_batch_end(trainer, module, outputs(step, factor), None, step)
        trainer.advance()


def trainer_at(step: int, ckpt_path: str | None) -> FakeTrainer:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    trainer = FakeTrainer(log_every_n_steps=EVERY, optimizers=[optimizer, optimizer], ckpt_path=ckpt_path)
    trainer.fit_loop.epoch_loop._batches_that_stepped = trainer.global_step = step
    return trainer


def resumed(tmp_path: Path, factor: float) -> tuple[ResumeContinuity, FakeTrainer, FakeModule]:
    """200 batches, a checkpoint, and a resumed callback fed 40 more batches with the losses × `factor`."""
    callback, trainer, module = ResumeContinuity(), trainer_at(0, None), FakeModule()
    callback.on_train_start(trainer, module)
    feed(callback, trainer, module, range(200))
    assert callback.history.series("diag/resumed_at_step") == []  # a fresh start is no resume
    torch.save(callback.state_dict(), tmp_path / "state.pt")
    restored = ResumeContinuity()
    restored.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    assert same(restored.state_dict(), callback.state_dict())
    trainer, module = trainer_at(200, "last.ckpt"), FakeModule()
    restored.on_train_start(trainer, module)
    feed(restored, trainer, module, range(200, 229), factor)  # logging steps 209, 219: too few points after
    assert not restored.alarms.active
    feed(restored, trainer, module, range(229, 240), factor)  # 229: the third
    return restored, trainer, module


def test_an_exact_resume_is_recorded_and_quiet(tmp_path: Path) -> None:
    callback, _, module = resumed(tmp_path, factor=1.0)
    assert [(p.step, p.value) for p in callback.history.series("diag/resumed_at_step")] == [(200, 200.0)]
    assert not callback.alarms.active
    assert module.last("diag/d_step_rate") == 1.0


def test_a_loss_jump_at_the_resume_raises_the_alarm_three_logging_steps_later(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match=r"RESUME_DISCONTINUITY: At the resume at epoch 0 \(step 200\), train/loss_"):
        callback, trainer, module = resumed(tmp_path, factor=3.0)
    alarm = callback.alarms.active["RESUME_DISCONTINUITY"]
    assert alarm["step"] == 229 and alarm["first_step"] == 200
    assert module.last("diag/alarm/RESUME_DISCONTINUITY") == 1.0
    # A later resume does not clear it: the jump happened, and `codecgan diagnose` still reports it.
    callback.on_train_start(trainer, module)
    feed(callback, trainer, module, range(240, 250), 3.0)
    assert callback.alarms.active["RESUME_DISCONTINUITY"]["first_step"] == 200
    assert callback.resume_step == 240


# ------------------------------------------------------------------------------------------------- real fits
def fit(run_dir: Path, max_steps: int, ckpt_path: Path | None = None):
    overlay = tiny_trainer_overlay(run_dir, max_steps=max_steps, val_every=1000, checkpoint_every=10)
    overlay["trainer"]["limit_val_batches"] = 0
    overlay["trainer"]["callbacks"].append({"class_path": "callbacks.ResumeContinuity"})
    config = write_overlay(run_dir.parent, f"{run_dir.name}-{max_steps}.yaml", overlay)
    args = ["fit", "--config", str(EXPERIMENTS / "codec_tiny.yaml"), "--config", str(config)]
    cli = build_cli(args + (["--ckpt_path", str(ckpt_path)] if ckpt_path else []))
    [callback] = [c for c in cli.trainer.callbacks if isinstance(c, ResumeContinuity)]
    return callback


def diagnose(run_dir: Path, capsys) -> list[dict]:
    capsys.readouterr()
    assert diagnose_main([str(run_dir / "tb"), "--json"]) == 0
    return [f for f in json.loads(capsys.readouterr().out) if f["code"] == "RESUME_DISCONTINUITY"]


@pytest.mark.slow
def test_real_resumes_exact_and_with_the_learning_rate_changed(tmp_path: Path, capsys) -> None:
    """24 batches (logged at 1, 3, ..., 23; checkpoints every 10), resumed from step 20 to 32 and from step 30 to 36;
    and a copy resumed from step 20 with the generator's learning rate ×30 in the checkpoint (optimizer and
    scheduler), as a resume that reset or overrode the schedule would leave it."""
    run, broken = tmp_path / "run", tmp_path / "broken"
    fit(run, 24)
    shutil.copytree(run, broken)
    assert not fit(run, 32, run / "checkpoints" / "step20.ckpt").alarms.active
    fit(run, 36, run / "checkpoints" / "step30.ckpt")

    assert diagnose(run, capsys) == []
    [(_, history)] = load_histories(str(run / "tb"))
    assert [(p.step, p.value) for p in history.series("diag/resumed_at_step")] == [(20, 20.0), (30, 30.0)]
    # The points each resumed run replaced (21 and 23 of the first fit, 31 of the second) are gone: TensorBoard
    # purged them.
    assert [p.step for p in history.series("train/loss_g")] == list(range(1, 36, 2))

    # The optimizer's learning rate and the scheduler's base, which sets it again at every step.
    checkpoint = torch.load(broken / "checkpoints" / "step20.ckpt", weights_only=False)
    checkpoint["optimizer_states"][0]["param_groups"][0]["lr"] *= 30
    checkpoint["lr_schedulers"][0]["base_lrs"] = [lr * 30 for lr in checkpoint["lr_schedulers"][0]["base_lrs"]]
    torch.save(checkpoint, broken / "checkpoints" / "step20.ckpt")
    with pytest.warns(UserWarning, match="RESUME_DISCONTINUITY"):
        live = fit(broken, 28, broken / "checkpoints" / "step20.ckpt").alarms.active["RESUME_DISCONTINUITY"]
    [offline] = diagnose(broken, capsys)
    assert offline["severity"] == live["severity"] == "warning"
    assert offline["first_step"] == live["first_step"] == 20
    assert live["step"] == 25  # raised at the third logging step after the resume (21, 23, 25)
    assert "train/lr_g went from 0.0003 (its trend) to 0.009" in offline["evidence"]
    assert "train/lr_g went from 0.0003 (its trend) to 0.009" in live["evidence"]
