"""MetricGANEnhancer with ``loss_recipe: mpsenet``: the weighted terms, what the metric discriminator sees, a tiny fit."""

from __future__ import annotations

import math

import pytest
import torch

from codecgan import MetricGANEnhancer
from codecgan.config_error import ConfigError
from codecgan.lightning_cli import build_cli
from codecgan.models import CMGANGenerator, MetricDiscriminator, MPSENetGenerator
from tests.conftest import EXPERIMENTS, tiny_trainer_overlay, write_overlay
from tests.test_enhance_module import DiscriminatorCalls, make_batch

WEIGHTS = {"magnitude": 0.9, "phase": 0.3, "complex": 0.1, "consistency": 0.1, "time": 0.2, "gan": 0.05}


def make_mpsenet_module(**kwargs) -> MetricGANEnhancer:
    torch.manual_seed(0)
    generator = MPSENetGenerator(channels=4, num_blocks=1, attention_heads=2, dense_depth=1)
    discriminator = MetricDiscriminator(channels=4, dropout=0.0)
    return MetricGANEnhancer(generator, discriminator, loss_recipe="mpsenet", pesq_workers=0, **kwargs)


def mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).square().mean()


def wrapped(x: torch.Tensor) -> torch.Tensor:
    return (x - 2 * math.pi * torch.round(x / (2 * math.pi))).abs()


def test_generator_terms_are_mpsenets_weighted_losses_and_the_metric_terms_see_the_reanalysed_magnitude():
    module = make_mpsenet_module().eval()  # no PESQ submitted; the losses are the same in train mode
    assert module.loss_weights == WEIGHTS
    calls = DiscriminatorCalls(module)
    module.discriminator.train()  # DiscriminatorCalls records training-mode calls (the losses')
    batch = make_batch(seed=3, size=2, seconds=0.5)
    with torch.no_grad():
        forward = module.generator_forward(batch)
        terms, _ = module.generator_loss(batch, forward, adversarial=True)
    generator = module.generator
    gain = forward["normalization"]
    with torch.no_grad():  # as above: the compressed re-analysis of near-silent bins magnifies kernel differences
        output = generator(batch["noisy"])
        clean = generator.compressed_spectrum(batch["clean"] * gain)
        reanalysed = generator.compressed_spectrum(output.audio * gain)
        prediction = module.discriminator(clean.magnitude, reanalysed.magnitude)
    clean_phase = torch.atan2(clean.imag, clean.real)
    ip = wrapped(clean_phase - output.phase).mean()
    gd = wrapped(clean_phase.diff(dim=2) - output.phase.diff(dim=2)).mean()  # along frequency
    iaf = wrapped(clean_phase.diff(dim=3) - output.phase.diff(dim=3)).mean()  # along time
    expected = {
        "loss_magnitude": 0.9 * mse(output.magnitude, clean.magnitude),
        "loss_phase": 0.3 * (ip + gd + iaf),
        "loss_complex": 0.1 * (mse(output.real, clean.real) + mse(output.imag, clean.imag)),
        "loss_consistency": 0.1 * (mse(output.real, reanalysed.real) + mse(output.imag, reanalysed.imag)),
        "loss_time": 0.2 * (output.audio * gain - batch["clean"] * gain).abs().mean(),
        "loss_adv": 0.05 * (prediction - 1).square().mean(),
    }
    assert list(terms) == list(expected)
    for name, value in expected.items():
        torch.testing.assert_close(terms[name], value, rtol=1e-5, atol=1e-7, msg=name)
    assert terms["loss_consistency"] > 0  # an estimate's (magnitude, phase) is not the STFT of its own waveform
    # The adversarial call's estimate input is the re-analysed magnitude, not the magnitude head.
    torch.testing.assert_close(calls.calls[0][1], reanalysed.magnitude)
    assert module.gradient_probe(forward) == (forward["magnitude"], forward["phase"])


def test_unknown_recipe_and_other_recipes_weights_fail_naming_the_key():
    with pytest.raises(ConfigError, match="loss_recipe must be one of"):
        make_mpsenet_module().__class__(
            CMGANGenerator(channels=4, num_blocks=0, dense_depth=1), MetricDiscriminator(channels=4), loss_recipe="x"
        )
    with pytest.raises(ConfigError, match=r"\['ri'\] for loss_recipe 'mpsenet'"):
        make_mpsenet_module(loss_weights={"ri": 0.1})


def test_enhance_mpsenet_tiny_fits_a_few_steps_with_every_term_finite(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    overlay = tiny_trainer_overlay(tmp_path / "run", max_steps=2, val_every=2, checkpoint_every=2)
    overlay["data"] = {"init_args": {"crop_seconds": 0.3, "batch_size": 2, "synthetic_items": [4, 1, 1]}}
    overlay["model"] = {"init_args": {"pesq_workers": 0}}
    config = write_overlay(tmp_path, "overlay.yaml", overlay)
    build_cli(["fit", "--config", str(EXPERIMENTS / "enhance_mpsenet_tiny.yaml"), "--config", str(config)])
    events = EventAccumulator(str(tmp_path / "run" / "tb")).Reload()
    tags = set(events.Tags()["scalars"])
    for term in ("magnitude", "phase", "complex", "consistency", "time", "adv"):
        values = [event.value for event in events.Scalars(next(tag for tag in tags if tag.endswith(f"loss_{term}")))]
        assert values and all(math.isfinite(value) and value >= 0 for value in values), term
    assert 1.0 < events.Scalars("val/pesq")[0].value < 4.7


@pytest.mark.slow
def test_enhance_mpsenet_tiny_learns_in_150_steps(tmp_path):
    # Measured (2-core VM, seed 0): val/pesq 1.08 at step 75 -> 1.25 at step 150; the weighted phase loss falls from
    # about 1.3 over its first 4 logs (steps 0-30) to about 1.1 over its last 4; about 100 s on 2 cores.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    overlay = tiny_trainer_overlay(tmp_path / "run", max_steps=150, val_every=75, checkpoint_every=150)
    overlay["trainer"]["log_every_n_steps"] = 10
    del overlay["data"]  # the tiny config's data: 0.5 s crops, 256 training items
    config = write_overlay(tmp_path, "overlay.yaml", overlay)
    build_cli(["fit", "--config", str(EXPERIMENTS / "enhance_mpsenet_tiny.yaml"), "--config", str(config)])
    events = EventAccumulator(str(tmp_path / "run" / "tb"), size_guidance={"scalars": 0}).Reload()
    pesq = [event.value for event in events.Scalars("val/pesq")]
    assert len(pesq) == 2 and pesq[1] > pesq[0] + 0.05, pesq
    phase = [event.value for event in events.Scalars("train/loss_phase")]
    assert sum(phase[-4:]) / 4 < 0.95 * sum(phase[:4]) / 4, phase


def test_enhance_mpsenet_config_has_mpsenets_sizes_optimizers_and_schedule():
    cli = build_cli(["--config", str(EXPERIMENTS / "enhance_mpsenet.yaml"), "--trainer.logger", "false"], run=False)
    count = lambda module: sum(parameter.numel() for parameter in module.parameters())  # noqa: E731
    # MP-SENet@89932cf: MPNet 2,263,372 and MetricDiscriminator 181,650 parameters (counted from its code).
    assert count(cli.model.generator) == 2_263_372 and count(cli.model.discriminator) == 181_650
    assert cli.model.loss_recipe == "mpsenet" and cli.model.loss_weights == WEIGHTS
    (optimizer_g, optimizer_d), (scheduler_g, scheduler_d) = cli.model.configure_optimizers()
    for optimizer in (optimizer_g, optimizer_d):
        assert optimizer.defaults["lr"] == 5e-4 and optimizer.defaults["betas"] == (0.8, 0.99)
    for scheduler in (scheduler_g, scheduler_d):
        assert isinstance(scheduler, torch.optim.lr_scheduler.ExponentialLR) and scheduler.gamma == 0.99
    assert cli.model.scheduler_interval == "epoch"
    assert cli.datamodule.crop_samples == 32000  # 2 s at 16 kHz
