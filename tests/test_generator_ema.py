"""The generator EMA (``model.init_args.ema_decay``): its update, skipped steps, evaluation with it, checkpoints,
resume and host reads."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import lightning as L
import pytest
import soundfile
import torch
from torch import nn
from torch._dynamo.utils import counters
from torch.utils._python_dispatch import TorchDispatchMode

import codecgan
from bench.host_overhead import count_one_batch
from codecgan.config_error import ConfigError
from codecgan.generator_ema import GeneratorEMA, adapt_generator_ema_weights
from codecgan.lightning_cli import build_cli
from codecgan.loop_options import check_loop_options
from tests.conftest import EXPERIMENTS, tiny_trainer_overlay, write_overlay
from tests.evaluation.test_codecgan_test import fit_then_test
from tests.inference.conftest import fit_tiny
from tests.inference.test_predict import predict
from tests.test_compile import COMPILED
from tests.test_ddp import two_process_codec_fit
from tests.test_resume import fit


class Tiny(nn.Module):
    """A linear layer with a persistent float buffer, an integer counter and a non-persistent constant."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 2)
        self.register_buffer("scale", torch.ones(2))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))
        self.register_buffer("window", torch.ones(4), persistent=False)


def perturb(network: nn.Module, generator: torch.Generator) -> None:
    """What an optimizer step and a forward do: move the float weights, advance the counter."""
    with torch.no_grad():
        for tensor in [*network.parameters(), network.scale]:
            tensor.add_(torch.randn(tensor.shape, generator=generator))
        network.count += 1


def float_weights(network: nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.clone() for name, value in network.state_dict().items() if value.is_floating_point()}


def test_the_average_follows_the_written_out_formula_over_several_steps() -> None:
    torch.manual_seed(0)
    network, rng, decay = Tiny(), torch.Generator().manual_seed(1), 0.9
    ema = GeneratorEMA(network, decay)
    expected = {name: value.double() for name, value in float_weights(network).items()}
    for _ in range(5):
        perturb(network, rng)
        ema.update(network, torch.tensor(False))
        for name, weight in float_weights(network).items():
            expected[name] = decay * expected[name] + (1 - decay) * weight.double()
    averaged = ema.averaged.state_dict()
    for name, value in expected.items():
        torch.testing.assert_close(averaged[name].double(), value, rtol=0, atol=1e-6)
    assert int(averaged["count"]) == 5  # integer buffers follow the generator
    assert ema.averaged.linear.weight.requires_grad is False


def test_a_skipped_step_leaves_the_average_bit_for_bit_unchanged() -> None:
    network, rng = Tiny(), torch.Generator().manual_seed(2)
    ema = GeneratorEMA(network, 0.5)
    perturb(network, rng)
    ema.update(network, torch.tensor(False))
    before = float_weights(ema.averaged)
    perturb(network, rng)
    ema.update(network, torch.tensor(True))
    after = float_weights(ema.averaged)
    assert all(torch.equal(before[name], after[name]) for name in before)


class OpCounter(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func))
        return func(*args, **(kwargs or {}))


def test_an_update_is_a_few_foreach_ops_and_reads_nothing_back() -> None:
    network = nn.Sequential(*[nn.Linear(4, 4) for _ in range(20)])  # 40 tensors
    ema = GeneratorEMA(network, 0.99)
    ema.update(network, torch.tensor(False))  # builds the tensor lists once
    not_skipped = torch.tensor(False)
    with OpCounter() as counter:
        ema.update(network, not_skipped)
    assert "aten._local_scalar_dense.default" not in counter.ops
    # The weight (not, mul), then sub, mul_, add_ over every tensor at once.
    assert len(counter.ops) == 5, counter.ops


@pytest.mark.parametrize("decay", [-0.1, 1.0, 1.5, math.nan])
def test_an_ema_decay_outside_0_1_is_a_config_error(decay: float) -> None:
    with pytest.raises(ConfigError, match=r"model.init_args.ema_decay must be in \[0, 1\)"):
        check_loop_options(0, 1, "step", None, None, 0, decay)


def test_swapping_the_average_in_and_out_gives_the_generator_its_own_weights_back() -> None:
    network, rng = Tiny(), torch.Generator().manual_seed(3)
    ema = GeneratorEMA(network, 0.9)
    perturb(network, rng)
    own = float_weights(network)
    ema.swap_in(network)
    assert torch.equal(network.linear.weight, ema.averaged.linear.weight)
    # A checkpoint written meanwhile (a crash during validation) holds the generator's own weights.
    saved = ema.generator_weights(network)
    assert all(torch.equal(saved[name], own[name]) for name in own)
    ema.swap_out(network)
    assert all(torch.equal(value, own[name]) for name, value in float_weights(network).items())


def test_a_checkpoint_fits_a_module_with_or_without_an_average() -> None:
    weight = torch.ones(2)
    with_ema = {"generator.w": weight, "generator_ema.averaged.w": 2 * weight, "discriminator.w": weight}
    dropped = dict(with_ema)
    adapt_generator_ema_weights(dropped, ema_on=False, fitting=False)
    assert sorted(dropped) == ["discriminator.w", "generator.w"]
    filled = {"generator.w": weight}
    adapt_generator_ema_weights(filled, ema_on=True, fitting=True)  # a fit resumed with the EMA newly on
    assert torch.equal(filled["generator_ema.averaged.w"], weight)
    with pytest.raises(ConfigError, match="holds no generator EMA"):
        adapt_generator_ema_weights({"generator.w": weight}, ema_on=True, fitting=False)


def test_the_average_round_trips_through_its_state_dict_and_continues_identically() -> None:
    network, rng = Tiny(), torch.Generator().manual_seed(4)
    ema = GeneratorEMA(network, 0.9)
    perturb(network, rng)
    ema.update(network, torch.tensor(False))
    restored = GeneratorEMA(Tiny(), 0.9)
    restored.load_state_dict(ema.state_dict())
    perturb(network, rng)
    for average in (ema, restored):
        average.update(network, torch.tensor(False))
    assert all(torch.equal(a, b) for a, b in zip(ema.state_dict().values(), restored.state_dict().values()))


class ValidationEstimates(L.Callback):
    def __init__(self) -> None:
        self.batches: list[tuple[torch.Tensor, torch.Tensor]] = []

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self.batches.append((batch["audio"].clone(), outputs["estimate"].clone()))


@pytest.mark.parametrize("ema_on", [True, False], ids=["ema", "raw"])
def test_validation_uses_the_average(tmp_path: Path, ema_on: bool) -> None:
    # Validation runs after the last of 3 steps: its estimates are the average's (on) or the generator's (off).
    overlay = tiny_trainer_overlay(tmp_path / "run", max_steps=3, val_every=3)
    overlay["trainer"]["limit_val_batches"] = 1
    config = write_overlay(tmp_path, "overlay.yaml", overlay)
    extra = ["--model.init_args.ema_decay", "0.5"] if ema_on else []
    cli = build_cli(["--config", str(EXPERIMENTS / "codec_tiny.yaml"), "--config", str(config), *extra], run=False)
    estimates = ValidationEstimates()
    cli.trainer.callbacks.append(estimates)
    cli.trainer.fit(cli.model, cli.datamodule)
    model = cli.model
    assert model.generator.training  # validation gave the generator back for training
    audio, estimate = estimates.batches[-1]
    with torch.no_grad():
        trained = model.generator.eval()(audio).audio
        averaged = model.generator_ema.averaged.eval()(audio).audio if ema_on else trained
    assert torch.equal(estimate, averaged)
    assert torch.equal(estimate, trained) is not ema_on


@pytest.mark.parametrize("config", ["codec_tiny", "enhance_tiny"])
@pytest.mark.parametrize("stage", ["validation", "test", "predict"])
def test_every_family_evaluates_with_the_average_and_gets_its_weights_back(config: str, stage: str) -> None:
    cli = build_cli(
        ["--config", str(EXPERIMENTS / f"{config}.yaml"), "--trainer.logger", "false", "--model.init_args.ema_decay",
         "0.5"],
        run=False,
    )  # fmt: skip
    module = cli.model
    with torch.no_grad():  # an average away from the generator's own weights
        for parameter in module.generator_ema.averaged.parameters():
            parameter.add_(1.0)
    own, averaged = float_weights(module.generator), float_weights(module.generator_ema.averaged)
    getattr(module, f"on_{stage}_epoch_start")()
    for name, value in float_weights(module.generator).items():
        assert torch.equal(value, averaged[name]), name
    if stage == "test":
        module._pending_test_rows = []  # the enhancer's end-of-test logging has nothing to log
    getattr(module, f"on_{stage}_epoch_end")()
    for name, value in float_weights(module.generator).items():
        assert torch.equal(value, own[name]), name


@pytest.mark.slow  # a fit and a second command: over 4 s
def test_codecgan_test_and_load_use_the_average(tmp_path: Path) -> None:
    data = {"crop_seconds": 0.2, "batch_size": 4, "synthetic_items": [8, 2, 2], "synthetic_seconds": 0.5}
    run = fit_then_test(tmp_path, "codec_tiny.yaml", data, {"ema_decay": 0.5})
    assert json.loads((run / "metrics.json").read_text())["weights"] == "ema"
    checkpoint = tmp_path / "run" / "checkpoints" / "last.ckpt"
    state = torch.load(checkpoint, weights_only=True)["state_dict"]
    loaded = codecgan.load(checkpoint).state_dict()
    for name, value in loaded.items():
        assert torch.equal(value, state[f"generator_ema.averaged.{name}"])
    assert any(not torch.equal(value, state[f"generator.{name}"]) for name, value in loaded.items())


@pytest.mark.slow  # a fit and a second command: over 4 s
def test_codecgan_test_of_an_enhancer_uses_the_average(tmp_path: Path) -> None:
    data = {"crop_seconds": 0.3, "batch_size": 2, "synthetic_items": [4, 1, 2], "silent_item_fraction": 0.0}
    run = fit_then_test(tmp_path, "enhance_tiny.yaml", data, {"pesq_workers": 0, "ema_decay": 0.5})
    summary = json.loads((run / "metrics.json").read_text())
    assert summary["weights"] == "ema" and summary["systems"]["enhanced"]["utterances"] == 2


@pytest.mark.parametrize("config", ["codec_tiny", "enhance_tiny"])
def test_a_batch_with_the_average_on_reads_nothing_back(tmp_path: Path, config: str) -> None:
    overrides = ["--model.init_args.ema_decay", "0.999"]
    counts = count_one_batch(EXPERIMENTS / f"{config}.yaml", tmp_path, overrides, keep_stacks=True)
    assert counts.host_reads == 0, "host reads at:\n" + "\n".join(counts.host_read_stacks)


@pytest.mark.slow
def test_a_resumed_fit_with_the_average_equals_a_straight_one(tmp_path: Path) -> None:
    extra = ["--model.init_args.ema_decay", "0.9"]
    straight = fit(tmp_path, "straight", max_steps=10, extra=extra)
    fit(tmp_path, "resumed", max_steps=5, extra=extra)
    resumed = fit(tmp_path, "resumed", max_steps=10, ckpt_path="last", extra=extra)
    straight_state = straight.model.state_dict()
    averaged = [name for name in straight_state if name.startswith("generator_ema.averaged.")]
    assert averaged
    for name, value in resumed.model.state_dict().items():
        assert torch.equal(value, straight_state[name]), f"{name} differs after resume"


@pytest.mark.slow  # a warm-up fit
def test_a_frozen_generator_leaves_the_average_alone(tmp_path: Path) -> None:
    # Discriminator warm-up for 2 batches, then one generator step: the average moves once, from the initial weights.
    overlay = tiny_trainer_overlay(tmp_path / "run", max_steps=3, val_every=10)
    overlay["trainer"]["limit_val_batches"] = 0
    config = write_overlay(tmp_path, "overlay.yaml", overlay)
    options = ["--model.init_args.ema_decay", "0.75", "--model.init_args.discriminator_warmup_steps", "2"]
    cli = build_cli(["--config", str(EXPERIMENTS / "codec_tiny.yaml"), "--config", str(config), *options], run=False)
    initial = float_weights(cli.model.generator)
    cli.trainer.fit(cli.model, cli.datamodule)
    trained, averaged = float_weights(cli.model.generator), float_weights(cli.model.generator_ema.averaged)
    for name, start in initial.items():
        torch.testing.assert_close(averaged[name], start + 0.25 * (trained[name] - start), rtol=0, atol=1e-7)
    assert any(not torch.equal(trained[name], start) for name, start in initial.items())


@pytest.mark.slow
def test_two_ddp_ranks_keep_the_same_average_without_more_gradient_traffic(tmp_path: Path) -> None:
    rank0 = two_process_codec_fit(tmp_path, {"ema_decay": 0.5})  # ranks identical, each gradient reduced once
    averaged = [name for name in rank0 if name.startswith("generator_ema.averaged.")]
    assert averaged
    prefix = len("generator_ema.averaged.")
    assert any(not torch.equal(rank0[name], rank0[f"generator.{name[prefix:]}"]) for name in averaged)


@pytest.mark.slow
def test_a_compiled_step_with_the_average_has_no_graph_break_and_no_host_read(tmp_path: Path) -> None:
    torch._dynamo.reset()
    counters.clear()
    try:
        counts = count_one_batch(
            EXPERIMENTS / "codec_tiny.yaml", tmp_path, [*COMPILED, "--model.init_args.ema_decay", "0.9"]
        )
        breaks = dict(counters["graph_break"])
    finally:
        torch._dynamo.reset()
    assert breaks == {}
    assert counts.host_reads == 0


@pytest.mark.slow  # a fit and a second command: over 4 s
def test_a_run_started_from_a_checkpoint_averages_from_its_weights(tmp_path: Path) -> None:
    first = fit(tmp_path, "first", max_steps=2)
    saved = {name: value.clone() for name, value in first.model.generator.state_dict().items()}
    overlay = tiny_trainer_overlay(tmp_path / "second", max_steps=1, val_every=10)
    overlay["trainer"]["limit_val_batches"] = 0
    config = write_overlay(tmp_path, "second.yaml", overlay)
    options = [
        *("--model.init_args.init_from", str(tmp_path / "first" / "checkpoints" / "last.ckpt")),
        *("--model.init_args.ema_decay", "0.9", "--model.init_args.discriminator_warmup_steps", "1"),
    ]
    second = build_cli(["fit", "--config", str(EXPERIMENTS / "codec_tiny.yaml"), "--config", str(config), *options])
    averaged = second.model.generator_ema.averaged.state_dict()  # the generator stayed frozen: nothing averaged yet
    assert all(torch.equal(averaged[name], value) for name, value in saved.items())


@pytest.mark.slow  # a fit and a second command: over 4 s
def test_codecgan_predict_uses_the_average(tmp_path: Path) -> None:
    (tmp_path / "fit").mkdir()
    run = fit_tiny(tmp_path / "fit", "codec_tiny.yaml", {"crop_seconds": 0.2}, {"ema_decay": 0.5})
    source = tmp_path / "tone.wav"
    audio = 0.3 * torch.sin(torch.arange(8000) * 0.05)
    soundfile.write(source, audio.numpy(), 16000)
    predict(run, tmp_path, [source])
    written, _ = soundfile.read(tmp_path / "predictions" / "tone.wav", dtype="float32")
    averaged = codecgan.load(run.checkpoint)  # the average (test_codecgan_test_and_load_use_the_average)
    state = torch.load(run.checkpoint, weights_only=True)["state_dict"]
    raw = copy.deepcopy(averaged)
    raw.load_state_dict({name[len("generator.") :]: v for name, v in state.items() if name.startswith("generator.")})
    with torch.no_grad():
        expected, other = (network(audio[None, None]).audio[0, 0] for network in (averaged, raw))
    torch.testing.assert_close(torch.from_numpy(written), expected, rtol=0, atol=1e-5)
    assert (other - expected).abs().max() > 1e-3
