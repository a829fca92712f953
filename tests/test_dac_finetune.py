"""Fine-tuning a DAC model by config: ``model.init_args.init_from`` on a ``weights.pth`` written by DAC's own code
(``tests/fixtures/dac/small_generator.pth``), the settings check, and the discriminator-only warm-up
(``discriminator_warmup_steps``)."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from codecgan.config_error import ConfigError
from codecgan.lightning_cli import build_cli
from codecgan.loop_options import check_loop_options
from codecgan.models import CodecGenerator
from codecgan.weight_loading import load_network_weights
from tests.conftest import EXPERIMENTS, tiny_trainer_overlay, write_overlay

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "dac"
DAC_WEIGHTS = FIXTURE / "small_generator.pth"
# small_generator.pth's DAC(...) settings, as codecgan's generator names them.
SMALL_GENERATOR = {
    "encoder_dim": 4,
    "encoder_strides": [2, 4],
    "decoder_dim": 16,
    "decoder_strides": [4, 2],
    "n_codebooks": 4,
    "codebook_size": 64,
    "codebook_dim": 4,
    "quantizer_dropout": 0.5,
}
# Of DAC's reconstruction's peak (0.97). Measured: 9.2e-7 (8.9e-7 absolute) under AVX-512, with which the fixture was
# written, and under AVX2, 1.5e-6 under ATEN_CPU_CAPABILITY=default: rounding, as in the generator outputs of
# tests/models/test_dac_reference.py (RTOL 1e-5).
RECONSTRUCTION_RTOL = 1e-5


def dac_record() -> dict:
    """DAC's input audio (2 items of 2,001 samples at 16 kHz) and DAC's reconstruction of it by the model saved in
    small_generator.pth, both written by DAC's code (tests/fixtures/dac/README.md)."""
    return torch.load(FIXTURE / "small.pt", weights_only=True)


class FixtureAudio(L.LightningDataModule):
    """Trains on seeded noise, validates on DAC's input audio (the whole items, in one batch)."""

    def __init__(self, audio: torch.Tensor) -> None:
        super().__init__()
        self.audio = audio

    @staticmethod
    def items(audio: torch.Tensor) -> list[dict]:
        return [{"audio": x, "length": x.shape[-1], "index": i} for i, x in enumerate(audio)]

    def train_dataloader(self) -> DataLoader:
        noise = 0.1 * torch.randn(16, 1, 2001, generator=torch.Generator().manual_seed(0))
        return DataLoader(self.items(noise), batch_size=2)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.items(self.audio), batch_size=len(self.audio))


class Recorder(L.Callback):
    """Each validation's estimate, and both networks' weights and schedulers' step counts after each training
    batch."""

    def __init__(self) -> None:
        self.estimates: list[torch.Tensor] = []
        self.generator: list[torch.Tensor] = []
        self.discriminator: list[torch.Tensor] = []
        self.scheduler_steps: list[list[int]] = []

    @staticmethod
    def flat(network: torch.nn.Module) -> torch.Tensor:
        return torch.cat([p.detach().flatten() for p in network.parameters()]).clone()

    def on_fit_start(self, trainer, pl_module) -> None:  # after setup: the weights the run starts from
        self.on_train_batch_end(trainer, pl_module, None, None, 0)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.generator.append(self.flat(pl_module.generator))
        self.discriminator.append(self.flat(pl_module.discriminator))
        self.scheduler_steps.append([config.scheduler.last_epoch for config in trainer.lr_scheduler_configs])

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self.estimates.append(outputs["estimate"].clone())


def finetune_cli(tmp_path: Path, max_steps: int, generator: dict, warmup: int = 0, val_every: int = 2):
    overlay = tiny_trainer_overlay(tmp_path / "run", max_steps=max_steps, val_every=val_every)
    overlay["trainer"]["num_sanity_val_steps"] = 1  # the first validation: before any training step
    overlay["model"] = {
        "init_args": {
            "init_from": str(DAC_WEIGHTS),
            "discriminator_warmup_steps": warmup,
            "generator": {"class_path": "codecgan.models.CodecGenerator", "init_args": generator},
        }
    }
    config = write_overlay(tmp_path, "overlay.yaml", overlay)
    return build_cli(["--config", str(EXPERIMENTS / "codec_tiny.yaml"), "--config", str(config)], run=False)


def test_a_fit_from_dacs_weights_validates_as_dac_reconstructs_and_warms_up_the_discriminator(tmp_path: Path):
    record = dac_record()
    cli = finetune_cli(tmp_path, max_steps=4, generator=SMALL_GENERATOR, warmup=2)
    recorder = Recorder()
    cli.trainer.callbacks.append(recorder)
    cli.trainer.fit(cli.model, FixtureAudio(record["audio"]))

    dac = CodecGenerator.from_dac_checkpoint(DAC_WEIGHTS)
    assert torch.equal(recorder.generator[0], Recorder.flat(dac)), "after setup: the file's weights"
    # The sanity validation (before training) and the one after the 2 warm-up batches: DAC's reconstruction.
    assert len(recorder.estimates) == 3
    expected = record["reconstruction"]
    for estimate in recorder.estimates[:2]:
        assert estimate.shape == expected.shape
        error = float((estimate - expected).abs().max())
        assert error <= RECONSTRUCTION_RTOL * float(expected.abs().max()), error
    # Warm-up: the generator frozen for 2 batches while the discriminator trains, then both train.
    changed = [
        [not torch.equal(before, after) for before, after in zip(weights, weights[1:])]
        for weights in (recorder.generator, recorder.discriminator)
    ]
    assert changed == [[False, False, True, True], [True, True, True, True]]
    assert recorder.scheduler_steps == [[0, 0], [0, 1], [0, 2], [1, 3], [2, 4]]  # the generator's waits
    assert cli.trainer.global_step == 4
    assert not torch.equal(recorder.estimates[2], recorder.estimates[1])


def test_a_dac_model_of_other_settings_is_refused_naming_both_values(tmp_path: Path):
    generator = {**SMALL_GENERATOR, "decoder_strides": [2, 4], "n_codebooks": 3}
    cli = finetune_cli(tmp_path, max_steps=1, generator=generator)
    with pytest.raises(ConfigError) as error:
        cli.trainer.fit(cli.model, FixtureAudio(dac_record()["audio"]))
    message = str(error.value)
    assert "decoder_strides is [4, 2] in the file (DAC's decoder_rates) and [2, 4] in the config" in message
    assert "model.init_args.generator.init_args.decoder_strides" in message
    assert "n_codebooks is 4 in the file and 3 in the config" in message


def test_a_dac_model_of_another_sample_rate_is_refused(tmp_path: Path):
    cli = finetune_cli(tmp_path, max_steps=1, generator=SMALL_GENERATOR)
    cli.model.sample_rate = 24000
    with pytest.raises(ConfigError, match=r"sample_rate is 16000 in the file and 24000 in the config \(data.init_args"):
        cli.trainer.fit(cli.model, FixtureAudio(dac_record()["audio"]))


def test_a_dac_model_initialises_a_codec_generator_only() -> None:
    networks = {"generator": torch.nn.Linear(2, 2), "discriminator": torch.nn.Linear(2, 1)}
    with pytest.raises(ConfigError, match="is a DAC model, which initialises a codecgan.models.CodecGenerator"):
        load_network_weights(networks, str(DAC_WEIGHTS))


@pytest.mark.parametrize(
    ("warmup", "start", "message"),
    [(-1, 0, "discriminator_warmup_steps must be >= 0"), (100, 50, "would leave both networks idle")],
)
def test_warmup_settings_that_cannot_work_are_refused(warmup: int, start: int, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_loop_options(start, 1, "step", None, None, discriminator_warmup_steps=warmup)
