"""One trainer.global_step per batch, schedulers that step with their optimizers, and a loud failure if a Lightning
release counts manual optimizer steps differently (codecgan/optimizer_steps.py)."""

from __future__ import annotations

from pathlib import Path

import lightning
import pytest
import torch

from codecgan import optimizer_steps
from codecgan.lightning_cli import build_cli
from codecgan.testing.faults import NonFiniteFault
from tests.conftest import EXPERIMENTS, tiny_trainer_overlay, write_overlay


def tiny_cli(tmp_path: Path, max_steps: int, config: str = "codec_tiny.yaml", *extra: str):
    overlay = tiny_trainer_overlay(tmp_path / "run", max_steps=max_steps, val_every=100, checkpoint_every=100)
    overlay_path = write_overlay(tmp_path, "overlay.yaml", overlay)
    return build_cli(["--config", str(EXPERIMENTS / config), "--config", str(overlay_path), *extra], run=False)


def optimizer_steps_taken(optimizer: torch.optim.Optimizer) -> int:
    """Steps an Adam-family optimizer actually applied (its per-parameter step count)."""
    return int(next(iter(optimizer.state.values()))["step"])


def test_this_lightning_release_is_one_codecgan_was_tested_with() -> None:
    # Fails on an upgrade: re-run this file, then add the release to optimizer_steps.TESTED_LIGHTNING.
    assert optimizer_steps.lightning_is_tested(), lightning.__version__


@pytest.mark.slow
@pytest.mark.parametrize("config", ["codec_tiny.yaml", "enhance_tiny.yaml"])
def test_global_step_counts_batches_and_both_optimizers_step_every_batch(tmp_path: Path, config: str) -> None:
    cli = tiny_cli(tmp_path, 6, config, "--data.init_args.crop_seconds", "0.3")  # PESQ needs 0.25 s
    cli.trainer.fit(cli.model, cli.datamodule)
    opt_g, opt_d = cli.trainer.optimizers
    assert cli.trainer.global_step == 6
    assert optimizer_steps_taken(opt_g) == optimizer_steps_taken(opt_d) == 6
    progress = cli.trainer.fit_loop.epoch_loop.manual_optimization.optim_step_progress
    assert progress.total.completed == 6


def test_a_changed_step_count_stops_the_run_with_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    """Simulate a Lightning release that also counts the discriminator's step."""
    original = optimizer_steps.step
    monkeypatch.setattr(optimizer_steps, "step", lambda trainer, opt, skip, counted: original(trainer, opt, skip, True))
    cli = tiny_cli(tmp_path, 6)
    with pytest.raises(RuntimeError, match="counts manual optimizer steps differently"):
        cli.trainer.fit(cli.model, cli.datamodule)


def test_a_scheduler_steps_only_when_its_optimizer_stepped(tmp_path: Path) -> None:
    cli = tiny_cli(
        tmp_path,
        8,
        "codec_tiny.yaml",
        "--model.init_args.scheduler_g",
        "torch.optim.lr_scheduler.ExponentialLR",
        "--model.init_args.scheduler_g.gamma",
        "0.5",
    )
    cli.trainer.callbacks.append(NonFiniteFault([2], target="loss_g"))
    cli.trainer.fit(cli.model, cli.datamodule)
    opt_g, opt_d = cli.trainer.optimizers
    scheduler_g, scheduler_d = cli.model.lr_schedulers()
    assert optimizer_steps_taken(opt_g) == 7 and optimizer_steps_taken(opt_d) == 8
    assert scheduler_g.last_epoch == 7 and scheduler_d.last_epoch == 8
    assert opt_g.param_groups[0]["lr"] == pytest.approx(0.0003 * 0.5**7)


@pytest.mark.slow
def test_epoch_schedulers_step_once_per_training_epoch(tmp_path: Path) -> None:
    """32 items at batch 4: 8 batches per epoch, 16 steps = 2 epochs = 2 scheduler steps for each network."""
    cli = tiny_cli(
        tmp_path,
        16,
        "codec_tiny.yaml",
        "--model.init_args.scheduler_interval",
        "epoch",
        "--model.init_args.scheduler_g",
        "torch.optim.lr_scheduler.StepLR",
        "--model.init_args.scheduler_g.step_size",
        "1",
        "--model.init_args.scheduler_g.gamma",
        "0.5",
        "--model.init_args.scheduler_d",
        "torch.optim.lr_scheduler.StepLR",
        "--model.init_args.scheduler_d.step_size",
        "1",
        "--model.init_args.scheduler_d.gamma",
        "0.5",
    )
    cli.trainer.fit(cli.model, cli.datamodule)
    assert cli.trainer.current_epoch == 2
    for scheduler, optimizer in zip(cli.model.lr_schedulers(), cli.trainer.optimizers):
        assert scheduler.last_epoch == 2
        assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0003 * 0.25)


def test_an_unknown_scheduler_interval_is_named() -> None:
    from codecgan import CodecGAN

    with pytest.raises(ValueError, match="scheduler_interval must be one of"):
        CodecGAN(torch.nn.Identity(), torch.nn.Identity(), scheduler_interval="batch")
