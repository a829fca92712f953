"""``codecgan enhance``, ``encode`` and ``decode`` on a folder of files at mixed rates, channel counts and lengths."""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

import pytest
import soundfile
import torch

from codecgan.cli import main
from codecgan.data.audio_reading import resampled_length
from codecgan.data.input_files import read_at_rate
from codecgan.inference.checkpoint_loading import load
from codecgan.inference.codes_file import CodesFile, bitrate_kbps
from codecgan.inference.enhancement import EnhanceSettings, enhance

MODEL_RATE = 16000


def run(args: list[str]) -> int:
    """``codecgan ARGS``' exit status."""
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    return exit_info.value.code


def wav_path(folder: Path, name: str) -> Path:
    return folder / Path(name).with_suffix(".wav")


def test_enhance_writes_every_readable_file_names_the_corrupt_one_and_exits_2(
    enhancer_run, recordings, tmp_path, capsys
):
    source, held = recordings
    inputs = tmp_path / "inputs"
    shutil.copytree(source, inputs)
    (inputs / "corrupt.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEjunk")
    out = tmp_path / "out"
    status = run(
        [
            "enhance",
            "--ckpt",
            str(enhancer_run.checkpoint),
            str(inputs),
            "--out",
            str(out),
            "--chunk-seconds",
            "2",
            "--overlap-seconds",
            "0.5",
        ]
    )
    assert status == 2
    captured = capsys.readouterr()
    assert f"{inputs / 'corrupt.wav'}:" in captured.err and "skipped" in captured.err
    assert "wrote 4 of 5 file(s)" in captured.out
    assert not (out / "corrupt.wav").exists()
    for name, recording in held.items():  # at the model's rate, lasting as long as the input
        info = soundfile.info(str(wav_path(out, name)))
        frames = resampled_length(recording.frames, recording.sample_rate, MODEL_RATE)
        assert (info.samplerate, info.channels, info.frames) == (MODEL_RATE, recording.channels, frames), name
    # Each channel is enhanced on its own, as the model enhances a mono file.
    enhancer = load(enhancer_run.checkpoint)
    three = read_at_rate(inputs / "three_channels_16k.wav", MODEL_RATE).audio
    alone = enhance(enhancer, three[1:2, None], MODEL_RATE, EnhanceSettings(2.0, 0.5))[0, 0]
    written, _ = soundfile.read(str(out / "three_channels_16k.wav"), dtype="float32")
    torch.testing.assert_close(torch.from_numpy(written[:, 1]), alone, rtol=0, atol=1e-5)


def test_enhance_keep_rate_writes_each_input_at_its_rate_and_exact_length(enhancer_run, recordings, tmp_path):
    source, held = recordings
    names = ["phone_8k.wav", "studio/stereo_44k.flac"]
    out = tmp_path / "out"
    status = run(
        [
            "enhance",
            "--ckpt",
            str(enhancer_run.checkpoint),
            *(str(source / name) for name in names),
            "--out",
            str(out),
            "--keep-rate",
        ]
    )
    assert status == 0
    for name in names:  # files given one by one are named by their stem
        info = soundfile.info(str(out / f"{Path(name).stem}.wav"))
        assert (info.samplerate, info.channels, info.frames) == (
            held[name].sample_rate,
            held[name].channels,
            held[name].frames,
        )


def test_encode_then_decode_equals_the_models_reconstruction(codec_run, recordings, tmp_path):
    source, held = recordings
    codes, out = tmp_path / "codes", tmp_path / "decoded"
    ckpt = str(codec_run.checkpoint)
    # 1 s windows: the longer files cross several, so the windows' seams are checked too.
    assert run(["encode", "--ckpt", ckpt, str(source), "--out", str(codes), "--chunk-seconds", "1"]) == 0
    assert run(["decode", "--ckpt", ckpt, str(codes), "--out", str(out), "--chunk-seconds", "1"]) == 0
    codec = load(codec_run.checkpoint)
    for name, recording in held.items():
        codes_file = CodesFile.load(codes / Path(name).with_suffix(".pt"))
        frames = resampled_length(recording.frames, recording.sample_rate, MODEL_RATE)
        assert codes_file.codes.shape == (recording.channels, 4, math.ceil(frames / 40))
        assert (codes_file.length, codes_file.input_sample_rate, codes_file.input_length) == (
            frames,
            recording.sample_rate,
            recording.frames,
        )
        audio = read_at_rate(source / name, MODEL_RATE).audio
        with torch.no_grad():
            reconstruction = codec(audio.unsqueeze(1))
        assert torch.equal(codes_file.codes, reconstruction.codes)
        decoded, rate = soundfile.read(str(wav_path(out, name)), dtype="float32", always_2d=True)
        assert rate == MODEL_RATE
        torch.testing.assert_close(torch.from_numpy(decoded.T), reconstruction.audio[:, 0], rtol=0, atol=1e-5)


def test_the_printed_bitrate_is_that_of_the_codes_written(codec_run, recordings, tmp_path, capsys):
    source, held = recordings
    codes, out = tmp_path / "codes", tmp_path / "decoded"
    ckpt = str(codec_run.checkpoint)
    name = "studio/stereo_44k.flac"
    assert run(["encode", "--ckpt", ckpt, str(source / name), "--out", str(codes), "--n-codebooks", "2"]) == 0
    printed = float(re.search(r"= ([0-9.]+) kbps per channel", capsys.readouterr().out).group(1))
    codes_file = CodesFile.load(codes / "stereo_44k.pt")
    channels, n_codebooks, frames = codes_file.codes.shape
    assert (channels, n_codebooks) == (2, 2) and printed == 6.4  # 2 x 8 bits x 400 frames/s
    assert printed == pytest.approx(codes_file.bitrate_kbps, abs=5e-4)
    # The bits in the file per second of audio: the same, but for the last frame's padding.
    seconds = codes_file.length / codes_file.sample_rate
    bits_per_channel = n_codebooks * frames * math.log2(codes_file.codebook_size)
    assert bits_per_channel / seconds / 1000 == pytest.approx(printed, rel=1 / frames)
    assert bitrate_kbps(n_codebooks, codes_file.codebook_size, MODEL_RATE, codes_file.hop_length) == 6.4
    # Decoded with the codebooks it holds, at the encoded file's rate and length.
    assert run(["decode", "--ckpt", ckpt, str(codes), "--out", str(out), "--keep-rate"]) == 0
    info = soundfile.info(str(out / "stereo_44k.wav"))
    assert (info.samplerate, info.channels, info.frames) == (44100, 2, held[name].frames)


def test_decode_names_a_file_that_holds_no_codes_and_goes_on(codec_run, recordings, tmp_path, capsys):
    source, _ = recordings
    codes = tmp_path / "codes"
    ckpt = str(codec_run.checkpoint)
    assert run(["encode", "--ckpt", ckpt, str(source / "mono_16k.wav"), "--out", str(codes)]) == 0
    (codes / "broken.pt").write_bytes(b"not a torch file")
    assert run(["decode", "--ckpt", ckpt, str(codes), "--out", str(tmp_path / "out")]) == 2
    assert f"{codes / 'broken.pt'}: not a codes file" in capsys.readouterr().err
    assert (tmp_path / "out" / "mono_16k.wav").is_file()


def test_a_checkpoint_of_the_other_family_is_refused_before_any_file(
    enhancer_run, codec_run, recordings, tmp_path, capsys
):
    source, _ = recordings
    assert run(["encode", "--ckpt", str(enhancer_run.checkpoint), str(source), "--out", str(tmp_path / "out")]) == 2
    assert "holds a CMGANGenerator, not a codec generator" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    assert run(["enhance", "--ckpt", str(codec_run.checkpoint), str(source), "--out", str(tmp_path / "out")]) == 2
    assert "holds a CodecGenerator, not an enhancement generator (it has encode, decode" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
