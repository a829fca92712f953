"""The tiny codec trains on CPU with EnCodec's parts: EMA codebooks (`quantizer: ema`) and the MS-STFT
discriminator, and logs the dead-code restarts."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch

from codecgan.config_error import ConfigError
from codecgan.lightning_cli import build_cli
from codecgan.models import CodecGenerator, EMAResidualVectorQuantizer, MultiScaleSTFTDiscriminator
from tests.conftest import EXPERIMENTS, tiny_trainer_overlay, write_overlay

EMA = ("--model.init_args.generator.init_args.quantizer", "ema")
MSSTFT = (
    "--model.init_args.discriminator",
    '{"class_path": "codecgan.models.MultiScaleSTFTDiscriminator", "init_args": {"filters": 4, '
    '"n_ffts": [1024, 512, 256, 128]}}',
)


class OutputRecorder(L.Callback):
    def __init__(self) -> None:
        self.outputs: list[dict] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.outputs.append(outputs)


def tiny_fit(tmp_path: Path, max_steps: int, *extra: str) -> tuple[object, OutputRecorder]:
    overlay = tiny_trainer_overlay(tmp_path / "run", max_steps=max_steps, val_every=max_steps)
    overlay["trainer"].update(log_every_n_steps=1, limit_val_batches=0)
    overlay["trainer"]["callbacks"].append({"class_path": "callbacks.CodebookUsage", "init_args": {"window_steps": 2}})
    path = write_overlay(tmp_path, "overlay.yaml", overlay)
    cli = build_cli(["--config", str(EXPERIMENTS / "codec_tiny.yaml"), "--config", str(path), *extra], run=False)
    recorder = OutputRecorder()
    cli.trainer.callbacks.append(recorder)
    cli.trainer.fit(cli.model, cli.datamodule)
    return cli, recorder


@pytest.mark.slow  # about 9 s on 2 shared cores (Lightning's start-up included)
def test_tiny_codec_trains_with_ema_codebooks(tmp_path: Path) -> None:
    cli, recorder = tiny_fit(tmp_path, 3, *EMA)
    quantizer = cli.model.generator.quantizer
    assert isinstance(quantizer, EMAResidualVectorQuantizer)
    assert all(codebook.inited.item() == 1.0 for codebook in quantizer.codebooks)  # k-means ran
    assert [out["losses"]["loss_g"].isfinite().item() for out in recorder.outputs] == [True] * 3
    restarts = [out["vq_dead_code_restarts"] for out in recorder.outputs]
    assert all(value.dtype == torch.long and value.ndim == 0 for value in restarts)
    assert "train/vq_dead_code_restarts" in cli.trainer.logged_metrics
    state = cli.model.state_dict()
    assert {"generator.quantizer.codebooks.0.embed", "generator.quantizer.codebooks.0.cluster_size"} <= set(state)


@pytest.mark.slow  # about 5 s
def test_tiny_codec_trains_with_the_msstft_discriminator(tmp_path: Path) -> None:
    cli, recorder = tiny_fit(tmp_path, 3, *MSSTFT)
    assert isinstance(cli.model.discriminator, MultiScaleSTFTDiscriminator)
    assert [out["losses"]["loss_g"].isfinite().item() for out in recorder.outputs] == [True] * 3
    assert all(out["d_stepped"] for out in recorder.outputs)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"quantizer": "vqvae"}, "quantizer"),
        ({"quantizer": "ema", "codebook_decay": 1.5}, "codebook_decay"),
        ({"quantizer": "ema", "dead_code_threshold": -1}, "dead_code_threshold"),
    ],
)
def test_bad_quantizer_settings_name_the_key(kwargs: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        CodecGenerator(encoder_dim=4, encoder_strides=(2,), decoder_dim=8, decoder_strides=(2,), **kwargs)
