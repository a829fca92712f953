"""A causal codec streamed chunk by chunk equals the whole file through it: the codes exactly, the audio within
1e-6, for chunks that are and are not whole frames, down to one sample."""

from __future__ import annotations

import pytest
import torch

from codecgan.models import CodecGenerator
from codecgan.models.streaming_codec import NotCausalError, StreamingDecoder, StreamingEncoder
from tests.models.test_causal_codec import HOP, tiny_codec

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
    # Measured at most 3e-7 (any ISA): vectorised sin rounds a chunk's tail samples differently from the whole file's.
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
