"""precision 16-mixed: gradients are clipped after unscaling, and an overflow backs the loss scale off while
training goes on. Driven on the CPU through Lightning's MixedPrecision plugin with a CPU GradScaler (Lightning
itself turns `16-mixed` into bf16 on a CPU, so the plugin is built by hand)."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch
from lightning.pytorch.plugins.precision import MixedPrecision

from codecgan.config_error import ConfigError
from codecgan.lightning_cli import build_cli
from codecgan.testing.faults import NonFiniteFault
from tests.conftest import EXPERIMENTS

INITIAL_SCALE = 256.0  # low enough that the tiny codec's gradients never overflow by themselves


class ScaleAndNorms(L.Callback):
    """The loss scale after each batch and the generator's gradient norm as its optimizer sees it."""

    def __init__(self, scaler: torch.amp.GradScaler) -> None:
        self.scaler = scaler
        self.scales: list[float] = []
        self.generator_norms_at_step: list[float] = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if optimizer is trainer.optimizers[0]:
            grads = [p.grad for p in pl_module.generator.parameters() if p.grad is not None]
            self.generator_norms_at_step.append(float(torch.nn.utils.get_total_norm(grads)))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.scales.append(self.scaler.get_scale())


def fp16_fit(*overrides: str, faults: list[L.Callback] = (), max_steps: int = 6):
    cli = build_cli(
        [
            "--config",
            str(EXPERIMENTS / "codec_tiny.yaml"),
            "--trainer.logger",
            "false",
            "--trainer.callbacks",
            "[]",
            "--data.init_args.synthetic_items",
            "[32, 2, 2]",
            "--data.init_args.crop_seconds",
            "0.2",
            *overrides,
        ],
        run=False,
    )
    scaler = torch.amp.GradScaler("cpu", init_scale=INITIAL_SCALE)
    watch = ScaleAndNorms(scaler)
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        plugins=[MixedPrecision("16-mixed", "cpu", scaler=scaler)],
        max_steps=max_steps,
        logger=False,
        enable_checkpointing=False,
        limit_val_batches=0,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=2,
        callbacks=[*faults, watch],
    )
    trainer.fit(cli.model, cli.datamodule)
    return trainer, cli.model, watch


@pytest.mark.slow
def test_an_overflow_backs_the_scale_off_and_training_continues() -> None:
    trainer, module, watch = fp16_fit(faults=[NonFiniteFault([3], target="estimate")])
    assert trainer.global_step == 6
    assert watch.scales[:3] == [INITIAL_SCALE] * 3
    # Both networks' steps saw the overflow; each GradScaler.update halved the scale.
    assert watch.scales[3] == INITIAL_SCALE / 4
    assert all(scale == INITIAL_SCALE / 4 for scale in watch.scales[4:])
    assert int(module.nonfinite_steps) == 1 and int(module.nonfinite_in_a_row) == 0
    assert all(math.isfinite(norm) for i, norm in enumerate(watch.generator_norms_at_step) if i != 3)


@pytest.mark.slow
def test_gradients_are_clipped_after_unscaling() -> None:
    _, _, watch = fp16_fit("--model.init_args.grad_clip_g", "0.05", max_steps=3)
    # Clipped to 0.05 in true units; clipping the scaled gradients would leave 0.05 / 256 after unscaling.
    assert watch.generator_norms_at_step == pytest.approx([0.05] * 3, rel=1e-3)


def test_fp16_refuses_an_optimizer_that_cannot_skip_on_the_device() -> None:
    with pytest.raises(ConfigError, match="optimizer_g.init_args.fused: true"):
        fp16_fit("--model.init_args.optimizer_g.init_args.fused", "false", max_steps=1)
