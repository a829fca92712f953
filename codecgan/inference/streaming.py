"""``codecgan encode --streaming`` and ``decode --streaming``: a whole file through a causal codec in the small
chunks a live stream would bring (``codecgan.models.streaming_codec``), as a check of what a streaming
deployment produces and how fast. The codes equal the windowed commands' exactly, the audio to float rounding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn.utils import parametrize

from codecgan.models.dac_codec import CodecGenerator
from codecgan.models.streaming_codec import StreamingDecoder, StreamingEncoder

# A file's progress bar moves at most this many times: a 20 ms chunk would otherwise redraw it 50 times per second
# of audio.
PROGRESS_UPDATES = 100


@dataclass(frozen=True)
class StreamingChunks:
    """Chunk size of a stream: ``chunk_ms`` milliseconds of audio (encode) or the whole frames nearest to them,
    at least one (decode). EnCodec and Mimi stream 80 ms frames; 20 ms suits a call."""

    chunk_ms: float = 20.0

    def samples(self, sample_rate: int) -> int:
        return max(1, round(self.chunk_ms * sample_rate / 1000))

    def frames(self, sample_rate: int, hop_length: int) -> int:
        return max(1, round(self.chunk_ms * sample_rate / 1000 / hop_length))


def encode_streaming(
    generator: CodecGenerator,
    audio: Tensor,
    sample_rate: int,
    n_codebooks: int | None = None,
    chunks: StreamingChunks = StreamingChunks(),
    on_chunk: Callable[[int, int], None] | None = None,
) -> Tensor:
    """Codes of ``audio`` ``[B, 1, T]`` pushed in chunks: ``[B, n_codebooks, ceil(T / hop)]``, as ``encode``'s."""
    encoder = StreamingEncoder(generator, n_codebooks)
    size = chunks.samples(sample_rate)
    starts = range(0, audio.shape[-1], size)
    pieces = []
    with parametrize.cached():  # each weight-normed weight computed once per file, not once per chunk
        for index, start in enumerate(starts):
            pieces.append(encoder.push(audio[..., start : start + size]))
            _report(on_chunk, index + 1, len(starts))
        pieces.append(encoder.flush())
    return torch.cat(pieces, dim=-1)


def decode_streaming(
    generator: CodecGenerator,
    codes: Tensor,
    length: int,
    sample_rate: int,
    chunks: StreamingChunks = StreamingChunks(),
    on_chunk: Callable[[int, int], None] | None = None,
) -> Tensor:
    """Audio of ``codes`` ``[B, n_q, frames]`` pushed in chunks of frames: ``[B, 1, length]``."""
    decoder = StreamingDecoder(generator)
    size = chunks.frames(sample_rate, generator.hop_length)
    starts = range(0, codes.shape[-1], size)
    pieces = []
    with parametrize.cached():
        for index, start in enumerate(starts):
            pieces.append(decoder.push(codes[..., start : start + size].long()))
            _report(on_chunk, index + 1, len(starts))
    return torch.cat(pieces, dim=-1)[..., :length]


def _report(on_chunk: Callable[[int, int], None] | None, done: int, total: int) -> None:
    if on_chunk is not None and (done == total or done % max(1, total // PROGRESS_UPDATES) == 0):
        on_chunk(done, total)
