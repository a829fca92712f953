"""Measurements taken every N steps reach TensorBoard once each, at the step they were taken, so `codecgan diagnose`
counts them right."""

from __future__ import annotations

from pathlib import Path

import pytest

from codecgan.diagnosis.history import load_histories
from codecgan.lightning_cli import build_cli
from tests.conftest import EXPERIMENTS, tiny_trainer_overlay, write_overlay


@pytest.mark.slow
def test_every_n_step_measurements_are_written_once_each(tmp_path: Path) -> None:
    # Lightning writes a step value again at each later logging step of its epoch: without care, the one gradient
    # measurement of this run would appear 6 times and satisfy GAN_TERM_NEGLIGIBLE's 3-measurement minimum alone.
    overlay = tiny_trainer_overlay(tmp_path / "run", max_steps=12, val_every=100, checkpoint_every=100)
    overlay["trainer"]["limit_val_batches"] = 0
    overlay["trainer"]["callbacks"] += [
        {"class_path": "callbacks.GradientBalance", "init_args": {"every_n_steps": 20}},
        {"class_path": "callbacks.CodebookUsage", "init_args": {"window_steps": 5}},
    ]
    overlay["data"]["init_args"]["synthetic_items"] = [64, 4, 4]  # one epoch: nothing resets the logged values
    config = write_overlay(tmp_path, "overlay.yaml", overlay)
    build_cli(["fit", "--config", str(EXPERIMENTS / "codec_tiny.yaml"), "--config", str(config)])
    [(_, history)] = load_histories(str(tmp_path / "run"))
    assert [p.step for p in history.series("diag/grad_share/loss_mel")] == [0]  # measured at 0
    assert [p.step for p in history.series("diag/codebook_entropy_fraction/0")] == [4, 9]  # windows end at 4 and 9
