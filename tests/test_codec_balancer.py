"""The loss balancer as CodecGAN's generator objective: the balanced gradient at the estimate plus the VQ terms,
its statistics in the checkpoint, its options checked, the tiny codec training with it."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from bench.host_overhead import count_one_batch
from codecgan.codec_module import CodecGAN
from codecgan.config_error import ConfigError
from codecgan.lightning_cli import build_cli
from codecgan.models import CodecGenerator, DACDiscriminator
from tests.conftest import EXPERIMENTS, tiny_trainer_overlay, write_overlay
from tests.test_ddp import two_process_codec_fit
from tests.test_gan_module import tiny_fit

ENCODEC_WEIGHTS = {"adversarial": 4.0, "feature_matching": 4.0, "waveform": 0.1, "mel": 2.0}
BALANCER = {"weights": ENCODEC_WEIGHTS, "ema_decay": 0.999, "total_norm": 1.0}


def tiny_codec(**options) -> CodecGAN:
    torch.manual_seed(0)
    generator = CodecGenerator(
        encoder_dim=4,
        encoder_strides=(2, 4),
        decoder_dim=16,
        decoder_strides=(4, 2),
        n_codebooks=2,
        codebook_size=16,
        codebook_dim=4,
    )
    discriminator = DACDiscriminator(periods=(2, 3), window_lengths=(256,), mpd_channels=(4, 8, 8, 8), mrd_channels=4)
    return CodecGAN(
        generator, discriminator, sample_rate=16000, mel_window_lengths=(64, 128), mel_bins=(10, 20), **options
    )


def test_the_objective_is_the_balanced_gradient_at_the_estimate_plus_the_vq_terms() -> None:
    module = tiny_codec(loss_balancer=BALANCER)
    batch = {"audio": torch.randn(2, 1, 1024) * 0.1, "length": torch.tensor([1024, 1024])}
    forward = module.generator_forward(batch)
    terms, _ = module.generator_loss(batch, forward, True)
    assert set(terms) == {"loss_mel", "loss_vq", "loss_waveform", "loss_adv", "loss_fm"}
    balancer = copy.deepcopy(module.loss_balancer)
    balanced = {name: terms[name] for name in ("loss_mel", "loss_waveform", "loss_adv", "loss_fm")}
    expected_gradient, _ = balancer(balanced, forward["estimate"])
    objective, logs = module.generator_objective(torch.stack(list(terms.values())).sum(), terms, forward)
    parameters = [p for p in module.generator.parameters() if p.requires_grad]
    got = torch.autograd.grad(objective, parameters, retain_graph=True, allow_unused=True)
    from_estimate = torch.autograd.grad(
        forward["estimate"], parameters, expected_gradient, retain_graph=True, allow_unused=True
    )
    from_vq = torch.autograd.grad(terms["loss_vq"], parameters, retain_graph=True, allow_unused=True)
    for g, a, b in zip(got, from_estimate, from_vq):
        want = sum(x for x in (a, b) if x is not None)
        # One backward of the sum against two: the same terms added in another order (float32 rounding).
        torch.testing.assert_close(g, want, rtol=1e-5, atol=1e-6 * float(want.abs().max()))
    # The first step's moving average is the step's own norm: the shares are exactly the weights' fractions.
    total = sum(ENCODEC_WEIGHTS.values())
    assert float(logs["diag/balancer_share/loss_adv"]) == pytest.approx(4 / total, rel=1e-5)
    assert float(logs["diag/balancer_share/loss_waveform"]) == pytest.approx(0.1 / total, rel=1e-5)
    assert set(logs) == {f"diag/balancer_{kind}/{name}" for kind in ("weight", "share") for name in balanced}
    assert "loss_balancer.ema_norm_sum" in module.state_dict()


def test_without_the_balancer_the_objective_is_the_weighted_sum() -> None:
    module = tiny_codec()
    loss_g = torch.tensor(3.0)
    assert module.generator_objective(loss_g, {}, {}) == (loss_g, {})
    assert module.loss_balancer is None and "loss_balancer.ema_norm_sum" not in module.state_dict()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"loss_balancer": {"weights": {"adversarial": 1}, "decay": 0.9}},
            r"loss_balancer has unknown keys \['decay'\]",
        ),
        ({"loss_balancer": {"weights": {"adv": 1}}}, r"loss_balancer.weights has unknown keys \['adv'\]"),
        ({"loss_balancer": {"weights": {"adversarial": -1}}}, r"loss_balancer.weights.adversarial must be ≥ 0"),
        ({"loss_balancer": {"weights": {"mel": 0}}}, r"loss_balancer.weights needs a weight above 0"),
        ({"loss_balancer": BALANCER, "loss_weights": {"mel": 15}}, r"loss_weights.mel has no effect under"),
    ],
)
def test_bad_balancer_options_name_their_key(options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        tiny_codec(**options)


@pytest.mark.slow
def test_tiny_codec_trains_with_the_balancer_and_checkpoints_its_average(tmp_path: Path) -> None:
    overlay = write_overlay(tmp_path, "balancer.yaml", {"model": {"init_args": {"loss_balancer": BALANCER}}})
    cli, recorder = tiny_fit(tmp_path, 12, "--config", str(overlay))
    losses = [out["losses"] for out in recorder.outputs]
    assert all(torch.isfinite(torch.stack(list(step.values()))).all() for step in losses)
    mel = torch.stack([step["loss_mel"] for step in losses])
    assert mel[-3:].mean() < 0.8 * mel[:3].mean(), f"mel {mel[:3].mean():.2f} -> {mel[-3:].mean():.2f}"
    shares = [out["objective_logs"] for out in recorder.outputs]
    assert all(abs(sum(float(v) for k, v in s.items() if "share" in k) - 1) < 1e-5 for s in shares)
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    for name in ("ema_norm_sum", "ema_weight_sum"):
        assert torch.equal(checkpoint["state_dict"][f"loss_balancer.{name}"], getattr(cli.model.loss_balancer, name))
    assert float(cli.model.loss_balancer.ema_weight_sum[0]) == pytest.approx(sum(0.999**k for k in range(12)))


def balanced_fit(tmp_path: Path, run: str, max_steps: int, ckpt_path: str | None = None):
    overlay = tiny_trainer_overlay(tmp_path / run, max_steps=max_steps, val_every=4, checkpoint_every=5)
    overlay["model"] = {"init_args": {"loss_balancer": BALANCER}}
    args = ["fit", "--config", str(EXPERIMENTS / "codec_tiny.yaml")]
    args += ["--config", str(write_overlay(tmp_path, f"{run}.yaml", overlay))]
    return build_cli(args + (["--ckpt_path", ckpt_path] if ckpt_path else []))


@pytest.mark.slow
def test_a_resumed_balanced_run_equals_the_straight_one(tmp_path: Path) -> None:
    straight = balanced_fit(tmp_path, "straight", 10)
    balanced_fit(tmp_path, "resumed", 5)
    resumed = balanced_fit(tmp_path, "resumed", 10, ckpt_path="last")
    straight_state = straight.model.state_dict()
    assert "loss_balancer.ema_norm_sum" in straight_state
    for name, value in resumed.model.state_dict().items():
        assert torch.equal(value, straight_state[name]), f"{name} differs after resume"


@pytest.mark.slow  # a 3-batch fit: 9 s on a loaded 2-core machine
def test_a_balanced_batch_that_does_not_log_never_reads_from_the_device(tmp_path: Path) -> None:
    overrides = ["--model.init_args.loss_balancer", json.dumps(BALANCER)]
    counts = count_one_batch(EXPERIMENTS / "codec_tiny.yaml", tmp_path, overrides, keep_stacks=True)
    assert counts.host_reads == 0, "host reads at:\n" + "\n".join(counts.host_read_stacks)


@pytest.mark.slow
def test_a_two_process_balanced_fit_keeps_ranks_identical_and_reduces_each_gradient_once(tmp_path: Path) -> None:
    # Each gradient reduced once: the balancer's surrogate is one backward.
    rank0 = two_process_codec_fit(tmp_path, {"loss_balancer": BALANCER})
    assert float(rank0["loss_balancer.ema_weight_sum"][0]) == pytest.approx(sum(0.999**k for k in range(4)))
