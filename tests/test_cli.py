"""The command line: every shipped config instantiates, --print_config works, bad input fails clearly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from codecgan.cli import main
from codecgan.lightning_cli import build_cli
from tests.conftest import EXPERIMENTS, ROOT

# Over 100 M parameters, or MPD + MSD at 71 M: initialising them takes 1 to 2 s on an idle core (3 to 7 s on the busy
# 2-core machine), so they instantiate in the slow suite; tests/test_vocoder_recipes.py checks their rates, hops,
# bands and excerpts in the fast one.
LARGE_CONFIGS = {"vocoder_bigvgan_24k", "vocoder_bigvgan_44k", "vocoder_hifigan_22k"}
BASE_CONFIGS = [
    pytest.param(p, marks=pytest.mark.slow) if p.stem in LARGE_CONFIGS else p
    for p in sorted(EXPERIMENTS.glob("*.yaml"))
]


@pytest.mark.parametrize("config", BASE_CONFIGS, ids=lambda p: p.stem)
def test_every_config_instantiates(config: Path) -> None:
    cli = build_cli(["--config", str(config), "--trainer.logger", "false"], run=False)
    assert cli.model is not None and cli.datamodule is not None


def test_encodec_config_has_encodecs_parts() -> None:
    cli = build_cli(["--config", str(EXPERIMENTS / "codec_encodec.yaml"), "--trainer.logger", "false"], run=False)
    model, generator = cli.model, cli.model.generator
    assert sum(p.numel() for p in model.discriminator.parameters()) == 472_330  # EnCodec's MS-STFT D, filters 32
    assert type(generator.quantizer).__name__ == "EMAResidualVectorQuantizer" and generator.causal
    assert (generator.hop_length, generator.n_codebooks, generator.codebook_size) == (320, 32, 1024)  # 75 Hz
    assert model.loss_balancer.weights == {"loss_mel": 2.0, "loss_adv": 4.0, "loss_fm": 4.0, "loss_waveform": 0.1}
    assert model.test_codebook_counts == (2, 4, 8, 16, 32)  # 1.5, 3, 6, 12, 24 kbps
    opt_g, opt_d = model.configure_optimizers()[0]
    assert opt_g.defaults["lr"] == 3e-4 and opt_d.defaults["betas"] == (0.5, 0.9)


def test_dac_config_has_dacs_discriminator_optimizer_and_precision() -> None:
    cli = build_cli(["--config", str(EXPERIMENTS / "codec_dac.yaml"), "--trainer.logger", "false"], run=False)
    assert sum(p.numel() for p in cli.model.discriminator.parameters()) == 42_519_760
    opt_g, opt_d = cli.model.configure_optimizers()[0]
    assert opt_g.defaults["lr"] == 1e-4 and opt_g.defaults["betas"] == (0.8, 0.99)
    assert cli.trainer.precision == "32-true"  # DAC's (amp: false), and the fastest measured (bench/results)


def test_print_config_and_python_dash_m() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "codecgan", "fit", "--config", str(EXPERIMENTS / "codec_tiny.yaml"), "--print_config"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "class_path: codecgan.CodecGAN" in result.stdout and "sample_rate: 16000" in result.stdout


def test_bad_data_folder_names_every_bad_file_before_training(tmp_path: Path, capsys) -> None:
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "notes.wav").write_text("not audio")
    soundfile.write(tmp_path / "zero.wav", np.zeros(0), 16000)
    soundfile.write(tmp_path / "good.wav", 0.1 * np.random.default_rng(0).standard_normal(16000), 16000)
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "fit",
                "--config",
                str(EXPERIMENTS / "codec_tiny.yaml"),
                "--trainer.logger",
                "false",
                "--trainer.default_root_dir",
                str(tmp_path / "run"),
                "--data.init_args.train_dir",
                str(tmp_path),
            ]
        )
    assert exit_info.value.code == 2
    message = capsys.readouterr().err
    for name in ("empty.wav", "notes.wav", "zero.wav"):
        assert str(tmp_path / name) in message
    assert "good.wav" not in message
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_skip_bad_files_trains_on_the_valid_ones(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "empty.wav").write_bytes(b"")
    rng = np.random.default_rng(0)
    for i in range(8):
        soundfile.write(data / f"good{i}.wav", 0.1 * rng.standard_normal(8000), 16000)
    cli = build_cli(
        [
            "--config",
            str(EXPERIMENTS / "codec_tiny.yaml"),
            "--trainer.logger",
            "false",
            "--trainer.callbacks",
            "[]",
            "--trainer.max_steps",
            "2",
            "--trainer.enable_checkpointing",
            "false",
            "--trainer.default_root_dir",
            str(tmp_path / "run"),
            "--data.init_args.train_dir",
            str(data),
            "--data.init_args.skip_bad_files",
            "true",
            "--data.init_args.crop_seconds",
            "0.2",
        ],
        run=False,
    )
    cli.trainer.fit(cli.model, cli.datamodule)
    train = cli.datamodule.datasets["train"].base
    assert len(train) == 8 and [bad.path for bad in train.skipped] == [str(data / "empty.wav")]
    assert cli.trainer.global_step == 2


def test_crops_shorter_than_the_discriminator_fail_at_start_naming_the_key(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "fit",
                "--config",
                str(EXPERIMENTS / "codec_tiny.yaml"),
                "--trainer.logger",
                "false",
                "--trainer.callbacks",
                "[]",
                "--data.init_args.crop_seconds",
                "0.005",
            ]
        )
    assert exit_info.value.code == 2
    assert "data.crop_seconds gives 80-sample crops" in capsys.readouterr().err
