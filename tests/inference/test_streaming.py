"""A causal codec streamed chunk by chunk equals the whole file through it: the codes exactly, the audio within
1e-6, for chunks that are and are not whole frames, down to one sample; and so do ``codecgan encode/decode
--streaming``."""

from __future__ import annotations

from pathlib import Path

import pytest
import soundfile
import torch
import yaml

from codecgan.inference.codes_file import CodesFile
from codecgan.models import CodecGenerator
from codecgan.models.streaming_codec import NotCausalError, StreamingDecoder, StreamingEncoder
from tests.inference.test_commands import run
from tests.models.test_causal_codec import HOP, TINY, tiny_codec

SAMPLE_RATE = 16000

LENGTH = 50 * HOP + 17  # not a whole number of frames: the last frame is padded


def speech_like(length: int, seed: int = 0) -> torch.Tensor:
    """``[2, 1, length]``: two channels of a tone in noise, the batch a stereo file gives the commands."""
    generator = torch.Generator().manual_seed(seed)
    times = torch.arange(length) / 16000
    tones = torch.stack([0.4 * torch.sin(2 * torch.pi * frequency * times) for frequency in (220.0, 330.0)])
    return (tones + 0.05 * torch.randn(2, length, generator=generator))[:, None]


def stream_encode(codec: CodecGenerator, audio: torch.Tensor, sizes: list[int], n_codebooks: int | None = None):
    """Codes of ``audio`` pushed in chunks of ``sizes`` samples (cycled), then flushed."""
    encoder, pieces, start = StreamingEncoder(codec, n_codebooks), [], 0
    while start < audio.shape[-1]:
        size = sizes[len(pieces) % len(sizes)]
        pieces.append(encoder.push(audio[..., start : start + size]))
        start += size
    return torch.cat([*pieces, encoder.flush()], dim=-1)


def stream_decode(codec: CodecGenerator, codes: torch.Tensor, frames: int) -> torch.Tensor:
    decoder = StreamingDecoder(codec)
    return torch.cat([decoder.push(codes[..., i : i + frames]) for i in range(0, codes.shape[-1], frames)], dim=-1)


@torch.no_grad()
@pytest.mark.parametrize(
    "sizes",
    [[HOP], [320], [1], [37], [HOP + 1, 3], [7 * HOP - 5, HOP // 2], [LENGTH - 2, 1]],
    ids=["one-frame", "eight-frames", "one-sample", "37-samples", "41-then-3", "275-then-20", "all-but-a-tiny-last"],
)
def test_streamed_codes_equal_the_whole_file_codes_exactly(sizes):
    codec = tiny_codec()
    audio = speech_like(LENGTH)
    codes = stream_encode(codec, audio, sizes)
    assert codes.shape == (2, 4, 51)
    assert torch.equal(codes, codec.encode(audio))


@torch.no_grad()
@pytest.mark.parametrize("frames", [1, 3, 8, 51])
def test_streamed_audio_equals_the_whole_file_decode_within_1e_6(frames):
    codec = tiny_codec()
    codes = codec.encode(speech_like(LENGTH))
    whole = codec.decode(codes)
    streamed = stream_decode(codec, codes, frames)
    assert streamed.shape == whole.shape == (2, 1, 51 * HOP)
    # Measured at most 3e-7 (any ISA): a k1 conv runs as a matrix product whose summation order depends on the length.
    torch.testing.assert_close(streamed, whole, rtol=0, atol=1e-6)


@torch.no_grad()
def test_fewer_codebooks_stream_as_the_whole_file_encodes_and_decodes_them():
    codec = tiny_codec()
    audio = speech_like(LENGTH, seed=1)
    codes = stream_encode(codec, audio, [123], n_codebooks=2)
    assert torch.equal(codes, codec.encode(audio, 2))
    torch.testing.assert_close(stream_decode(codec, codes, 5), codec.decode(codes), rtol=0, atol=1e-6)


@torch.no_grad()
def test_a_chunk_that_completes_no_frame_returns_no_codes_and_flush_ends_the_stream():
    codec = tiny_codec()
    encoder = StreamingEncoder(codec)
    assert encoder.flush().shape == (0, 4, 0)  # nothing pushed
    audio = speech_like(2 * HOP)
    assert encoder.push(audio[..., : HOP - 1]).shape == (2, 4, 0)
    assert encoder.push(audio[..., HOP - 1 : 2 * HOP]).shape == (2, 4, 2)
    assert encoder.flush().shape == (2, 4, 0)  # whole frames: nothing left
    assert StreamingDecoder(codec).push(torch.zeros(2, 4, 0, dtype=torch.long)).shape == (2, 1, 0)


def test_a_centred_codec_does_not_stream_and_the_error_names_the_config_key():
    for streaming in (StreamingEncoder, StreamingDecoder):
        with pytest.raises(NotCausalError, match=r"model\.init_args\.generator\.init_args\.causal: true"):
            streaming(tiny_codec(causal=False))


def write_checkpoint(folder: Path, causal: bool) -> Path:
    """A run folder as ``codecgan fit`` leaves it (``config.yaml``, ``checkpoints/last.ckpt``) holding a seeded tiny
    codec: what the commands read, without a fit."""
    generator = {"class_path": "codecgan.models.CodecGenerator", "init_args": {**TINY, "causal": causal}}
    config = {"model": {"init_args": {"generator": generator}}, "data": {"init_args": {"sample_rate": SAMPLE_RATE}}}
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    state = {f"generator.{name}": value for name, value in tiny_codec(causal).state_dict().items()}
    torch.save({"state_dict": state}, folder / "checkpoints" / "last.ckpt")
    return folder / "checkpoints" / "last.ckpt"


def test_streaming_encode_and_decode_on_a_stereo_file_equal_the_windowed_commands(tmp_path):
    checkpoint = write_checkpoint(tmp_path / "run", causal=True)
    audio = speech_like(LENGTH)
    soundfile.write(tmp_path / "talk.wav", audio[:, 0].T.numpy(), SAMPLE_RATE, subtype="FLOAT")
    outputs = {}
    for name, streaming in (("windowed", []), ("streamed", ["--streaming", "--streaming-chunk-ms", "7"])):
        out = tmp_path / name
        common = ["--ckpt", str(checkpoint), "--out", str(out), *streaming]
        assert run(["encode", str(tmp_path / "talk.wav"), *common]) == 0
        assert run(["decode", str(out / "talk.pt"), *common]) == 0
        outputs[name] = CodesFile.load(out / "talk.pt"), soundfile.read(out / "talk.wav", dtype="float32")[0]
    (windowed_codes, windowed_audio), (streamed_codes, streamed_audio) = outputs["windowed"], outputs["streamed"]
    assert torch.equal(streamed_codes.codes, windowed_codes.codes)  # 7 ms: 112 samples, not a whole number of frames
    assert torch.equal(streamed_codes.codes, tiny_codec().encode(audio))
    assert streamed_audio.shape == windowed_audio.shape == (LENGTH, 2)
    torch.testing.assert_close(torch.from_numpy(streamed_audio), torch.from_numpy(windowed_audio), rtol=0, atol=1e-6)


@pytest.mark.parametrize("command", ["encode", "decode"])
def test_streaming_with_a_centred_checkpoint_exits_2_naming_the_causal_key(command, tmp_path, capsys):
    checkpoint = write_checkpoint(tmp_path / "run", causal=False)
    (tmp_path / "in.pt").write_bytes(b"")
    soundfile.write(tmp_path / "in.wav", speech_like(HOP)[0, 0].numpy(), SAMPLE_RATE)
    source = tmp_path / ("in.wav" if command == "encode" else "in.pt")
    status = run([command, str(source), "--ckpt", str(checkpoint), "--out", str(tmp_path / "out"), "--streaming"])
    assert status == 2
    error = capsys.readouterr().err
    assert "model.init_args.generator.init_args.causal: true" in error and "--streaming" in error
    assert not (tmp_path / "out").exists()
