"""``codecgan predict`` (LightningCLI): each family's ``predict_step`` and the ``AudioPredictionWriter`` files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import soundfile
import torch

from codecgan.cli import main
from codecgan.data.audio_reading import resampled_length
from codecgan.data.input_files import read_at_rate
from codecgan.inference.checkpoint_loading import load
from codecgan.inference.codes_file import CodesFile
from tests.conftest import write_overlay

MODEL_RATE = 16000


def predict(run, tmp_path: Path, paths: list[Path], *extra: str) -> None:
    # No logger: the saved config then goes to tmp_path, not over the training run's config.yaml.
    args = [
        "predict",
        *run.config_args,
        "--ckpt_path",
        str(run.checkpoint),
        "--trainer.default_root_dir",
        str(tmp_path),
        "--trainer.logger",
        "false",
        "--data.init_args.predict_paths",
        json.dumps([str(path) for path in paths]),
        *extra,
    ]
    main(args)


def test_codec_predict_writes_the_reconstruction_and_codes_of_every_file(codec_run, recordings, tmp_path):
    source, held = recordings
    predict(codec_run, tmp_path, [source])  # the CLI adds the writer: <default_root_dir>/predictions
    codec = load(codec_run.checkpoint)
    for name, recording in held.items():
        output = tmp_path / "predictions" / Path(name).with_suffix("")
        audio = read_at_rate(source / name, MODEL_RATE).audio
        with torch.no_grad():
            reconstruction = codec(audio.unsqueeze(1))
        written, rate = soundfile.read(f"{output}.wav", dtype="float32", always_2d=True)
        frames = resampled_length(recording.frames, recording.sample_rate, MODEL_RATE)
        assert rate == MODEL_RATE and written.shape == (frames, recording.channels)
        torch.testing.assert_close(torch.from_numpy(written.T), reconstruction.audio[:, 0], rtol=0, atol=1e-5)
        codes = CodesFile.load(f"{output}.pt")
        assert torch.equal(codes.codes, reconstruction.codes) and codes.codes.shape[-1] == math.ceil(frames / 40)


def test_enhancer_predict_writes_at_the_input_rates_and_names_a_missing_file(
    enhancer_run, recordings, tmp_path, capsys
):
    source, held = recordings
    writer = {
        "class_path": "codecgan.inference.prediction_writer.AudioPredictionWriter",
        "init_args": {"output_dir": str(tmp_path / "enhanced"), "keep_rate": True},
    }
    overlay = write_overlay(tmp_path, "writer.yaml", {"trainer": {"callbacks": [writer]}})
    names = ["phone_8k.wav", "studio/stereo_44k.flac"]
    with pytest.raises(SystemExit) as exit_info:
        predict(
            enhancer_run,
            tmp_path,
            [*(source / name for name in names), tmp_path / "missing.wav"],
            "--config",
            str(overlay),
        )
    assert exit_info.value.code == 2
    assert f"{tmp_path / 'missing.wav'}: file does not exist" in capsys.readouterr().err
    for name in names:
        info = soundfile.info(str(tmp_path / "enhanced" / f"{Path(name).stem}.wav"))
        assert (info.samplerate, info.channels, info.frames) == (
            held[name].sample_rate,
            held[name].channels,
            held[name].frames,
        )
    assert not list((tmp_path / "enhanced").glob("*.pt"))
