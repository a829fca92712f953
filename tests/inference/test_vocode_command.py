"""``codecgan vocode`` and ``codecgan.load`` for vocoders, and ``codecgan test`` of a tiny vocoder end to end."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
import yaml

from codecgan.cli import main
from codecgan.data.audio_reading import resampled_length
from codecgan.evaluation.vocoder_scores import VOCODER_MEASURES
from codecgan.inference.checkpoint_loading import instantiate, load
from codecgan.inference.vocode_command import read_mel
from codecgan.inference.vocoder import Vocoder
from tests.conftest import EXPERIMENTS
from tests.inference.conftest import TinyRun, fit_tiny

MODEL_RATE, HOP, N_MELS = 16000, 64, 32  # experiments/vocoder_vocos_tiny.yaml


def run(args: list[str]) -> int:
    """``codecgan ARGS``' exit status."""
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    return exit_info.value.code


def untrained_tiny_vocoder() -> Vocoder:
    """The tiny config's generator and front-end, freshly initialised."""
    model = yaml.safe_load((EXPERIMENTS / "vocoder_vocos_tiny.yaml").read_text())["model"]["init_args"]
    parts = {
        name: instantiate(model[name]["class_path"], model[name]["init_args"])
        for name in ("generator", "mel_spectrogram")
    }
    return Vocoder(parts["generator"], parts["mel_spectrogram"], MODEL_RATE).eval()


def test_a_vocoder_resynthesises_any_length_and_renders_a_hop_per_frame_after_the_first():
    vocoder = untrained_tiny_vocoder()
    assert (vocoder.hop_length, vocoder.n_mels) == (HOP, N_MELS)
    audio = torch.randn(2, 1, 1000)  # not a whole number of hops
    mel = vocoder.mel(audio)
    assert mel.shape == (2, N_MELS, 1024 // HOP + 1)  # padded to whole hops, centred frames
    assert vocoder.resynthesise(audio).shape == (2, 1, 1000)
    assert vocoder.vocode(mel).shape == (2, 1, 1024)
    with pytest.raises(ValueError, match=r"must be \[B, 32, frames\]"):
        vocoder.vocode(torch.zeros(1, 80, 10))


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (np.zeros((80, 12), np.float32), r"holds a mel of shape \[80, 12\]; expected \[32, frames\]"),
        (np.zeros((12, 32), np.float32), r"holds a mel of shape \[12, 32\]; expected \[32, frames\]"),
        (np.zeros((1, 32, 12), np.float32), r"holds a mel of shape \[1, 32, 12\]"),
        (np.full((32, 4), np.nan, np.float32), r"NaN/infinity"),
    ],
)
def test_a_mel_file_of_another_shape_is_refused_naming_the_file_and_the_shape(tmp_path, content, problem):
    path = tmp_path / "speech.npy"
    np.save(path, content)
    with pytest.raises(ValueError, match=problem) as error:
        read_mel(path, N_MELS)
    assert str(path) in str(error.value)


def test_a_pt_mel_file_is_read_and_one_without_a_tensor_is_refused(tmp_path):
    good, bad = tmp_path / "good.pt", tmp_path / "bad.pt"
    torch.save(torch.ones(N_MELS, 5, dtype=torch.float64), good)
    torch.save({"mel": torch.ones(N_MELS, 5)}, bad)
    assert read_mel(good, N_MELS).dtype == torch.float32
    with pytest.raises(ValueError, match=r"bad.pt holds a dict, not a tensor \[32, frames\]"):
        read_mel(bad, N_MELS)


# ------------------------------------------------------------------ a trained tiny vocoder, end to end
@pytest.fixture(scope="module")
def vocoder_run(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    return fit_tiny(tmp_path_factory.mktemp("vocoder"), "vocoder_vocos_tiny.yaml", {"crop_seconds": 0.256}, {})


@pytest.mark.slow
def test_codecgan_test_scores_a_tiny_vocoder_with_every_measure(vocoder_run):
    main(["test", *vocoder_run.config_args, "--ckpt_path", str(vocoder_run.checkpoint)])
    summary = json.loads((vocoder_run.checkpoint.parent.parent / "tb" / "metrics.json").read_text())
    assert summary["measures"] == list(VOCODER_MEASURES)
    assert list(summary["systems"]) == ["vocoder"]
    vocoder = summary["systems"]["vocoder"]
    assert vocoder["utterances"] == 2
    for name, entry in vocoder["measures"].items():
        assert entry["scored"] == 2 and math.isfinite(entry["mean"]), name
    # Six steps from random weights: far from the recording, but PESQ's floor is 1 and F1 lies in [0, 1].
    assert vocoder["measures"]["mel_distance"]["mean"] > 0.5
    assert 1.0 <= vocoder["measures"]["pesq_wb"]["mean"] < 2.0
    assert 0.0 <= vocoder["measures"]["vuv_f1"]["mean"] <= 1.0


@pytest.mark.slow
def test_load_gives_the_vocoder_with_its_front_end(vocoder_run):
    vocoder = load(vocoder_run.checkpoint)
    assert isinstance(vocoder, Vocoder) and not vocoder.training
    assert (vocoder.sample_rate, vocoder.hop_length, vocoder.n_mels) == (MODEL_RATE, HOP, N_MELS)
    saved = torch.load(vocoder_run.checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    assert torch.equal(vocoder.generator.state_dict()["head.out.weight"], saved["generator.head.out.weight"])


@pytest.mark.slow
def test_vocode_resynthesises_audio_renders_mels_and_names_a_mel_of_other_bands(
    vocoder_run, recordings, tmp_path, capsys
):
    source, held = recordings
    inputs = tmp_path / "inputs"
    shutil.copytree(source, inputs)
    vocoder = load(vocoder_run.checkpoint)
    audio = torch.from_numpy(soundfile.read(source / "mono_16k.wav", dtype="float32")[0])[None, None]
    np.save(inputs / "rendered.npy", vocoder.mel(audio)[0].numpy())
    np.save(inputs / "wrong_bands.npy", np.zeros((80, 10), np.float32))
    out = tmp_path / "out"
    status = run(["vocode", "--ckpt", str(vocoder_run.checkpoint), str(inputs), "--out", str(out)])
    assert status == 2
    captured = capsys.readouterr()
    assert f"{inputs / 'wrong_bands.npy'} holds a mel of shape [80, 10]; expected [32, frames]" in captured.err
    assert f"wrote {len(held) + 1} of {len(held) + 2} file(s)" in captured.out
    for name, recording in held.items():
        samples, rate = soundfile.read(out / Path(name).with_suffix(".wav"), dtype="float32", always_2d=True)
        expected = resampled_length(recording.frames, recording.sample_rate, MODEL_RATE)
        assert (rate, samples.shape) == (MODEL_RATE, (expected, recording.channels)), name
    rendered, rate = soundfile.read(out / "rendered.wav", dtype="float32")
    frames = vocoder.mel(audio).shape[-1]
    assert (rate, rendered.shape) == (MODEL_RATE, ((frames - 1) * HOP,))  # centred frames: one hop less
    # The mel file renders what resynthesising its recording gives, before the cut to the recording's length.
    resynthesised, _ = soundfile.read(out / "mono_16k.wav", dtype="float32")
    np.testing.assert_allclose(rendered[: resynthesised.size], resynthesised, atol=1e-5)


@pytest.mark.slow
def test_vocode_refuses_a_codec_checkpoint(codec_run, tmp_path, capsys):
    status = run(["vocode", "--ckpt", str(codec_run.checkpoint), str(tmp_path), "--out", str(tmp_path / "out")])
    assert status == 2
    assert "not a vocoder generator" in capsys.readouterr().err


@pytest.mark.slow
def test_vocoder_predict_writes_what_vocode_writes(vocoder_run, recordings, tmp_path):
    source, held = recordings
    args = [*vocoder_run.config_args, "--ckpt_path", str(vocoder_run.checkpoint)]
    main(
        ["predict", *args, "--trainer.default_root_dir", str(tmp_path), "--trainer.logger", "false"]
        + ["--data.init_args.predict_paths", json.dumps([str(source)])]
    )
    assert run(["vocode", "--ckpt", str(vocoder_run.checkpoint), str(source), "--out", str(tmp_path / "vocoded")]) == 0
    for name in held:
        predicted, rate = soundfile.read(tmp_path / "predictions" / Path(name).with_suffix(".wav"), dtype="float32")
        vocoded, _ = soundfile.read(tmp_path / "vocoded" / Path(name).with_suffix(".wav"), dtype="float32")
        assert rate == MODEL_RATE
        np.testing.assert_allclose(predicted, vocoded, atol=1e-5, err_msg=name)


@pytest.mark.slow
def test_enhance_refuses_a_vocoder_checkpoint(vocoder_run, recordings, tmp_path, capsys):
    source, _ = recordings
    assert run(["enhance", "--ckpt", str(vocoder_run.checkpoint), str(source), "--out", str(tmp_path / "out")]) == 2
    assert "not an enhancement generator (it has vocode, resynthesise" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
