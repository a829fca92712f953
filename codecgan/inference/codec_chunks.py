"""Encoding audio to codes and decoding codes to audio window by window, for files of any length.

A codec's encoder and decoder are convolutional: each latent frame depends on a bounded stretch of
samples around it (the tiny codec: 532 samples, DAC at 44.1 kHz: 4,244), and each output sample on a
bounded number of frames (15 and 10). Both passes therefore run on windows of whole frames that overlap
by ``context`` frames on each side; a window's frames and samples within ``context`` of its ends are
dropped, and no cross-fade is needed. With ``context`` beyond the receptive field the codes are those of
encoding the whole file, and the audio that of decoding it, to float rounding
(``tests/inference/test_long_files.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from codecgan.inference.chunking import chunk_windows


@dataclass(frozen=True)
class CodecChunking:
    """Window sizes for a codec.

    chunk_seconds: audio each window produces. At DAC's size 10 s at 44.1 kHz hold about 1 GB of
        activations in the encoder's first blocks.
    context_seconds: extra audio read on each side of a window and dropped; must exceed the encoder's
        and the decoder's receptive fields (DAC at 44.1 kHz: 0.1 s and 0.12 s). A window reads
        ``chunk_seconds + 2 * context_seconds``.
    """

    chunk_seconds: float = 10.0
    context_seconds: float = 0.5

    def frames(self, sample_rate: int, hop_length: int) -> tuple[int, int]:
        """``(window, context)`` in frames of ``hop_length`` samples at ``sample_rate``: a window is the frames it
        produces (at least one) and ``context`` frames (at least one) on each side."""
        frame_rate = sample_rate / hop_length
        context = max(1, math.ceil(self.context_seconds * frame_rate))
        return max(1, round(self.chunk_seconds * frame_rate)) + 2 * context, context


@torch.no_grad()
def encode_in_chunks(
    generator: nn.Module,
    audio: Tensor,
    sample_rate: int,
    n_codebooks: int | None = None,
    chunking: CodecChunking = CodecChunking(),
    on_chunk: Callable[[int, int], None] | None = None,
) -> Tensor:
    """Codes of ``audio`` ``[B, 1, T]`` at ``sample_rate`` (the generator's): ``[B, n_codebooks, ceil(T / hop)]``.

    ``on_chunk(done, total)`` is called after each window."""
    hop = generator.hop_length
    padded = F.pad(audio, (0, -audio.shape[-1] % hop))
    windows = chunk_windows(padded.shape[-1] // hop, *_frame_windows(chunking, sample_rate, hop))
    pieces = []
    for index, window in enumerate(windows):
        codes = generator.encode(padded[..., window.start * hop : window.stop * hop], n_codebooks)
        pieces.append(codes[..., window.keep_start - window.start : window.keep_stop - window.start])
        if on_chunk is not None:
            on_chunk(index + 1, len(windows))
    return torch.cat(pieces, dim=-1)


@torch.no_grad()
def decode_in_chunks(
    generator: nn.Module,
    codes: Tensor,
    length: int,
    sample_rate: int,
    chunking: CodecChunking = CodecChunking(),
    on_chunk: Callable[[int, int], None] | None = None,
) -> Tensor:
    """Audio of ``codes`` ``[B, n_q, frames]``: ``[B, 1, length]`` (``length <= frames * hop``)."""
    hop = generator.hop_length
    windows = chunk_windows(codes.shape[-1], *_frame_windows(chunking, sample_rate, hop))
    pieces = []
    for index, window in enumerate(windows):
        audio = generator.decode(codes[..., window.start : window.stop].long())
        pieces.append(audio[..., (window.keep_start - window.start) * hop : (window.keep_stop - window.start) * hop])
        if on_chunk is not None:
            on_chunk(index + 1, len(windows))
    return torch.cat(pieces, dim=-1)[..., :length]


def _frame_windows(chunking: CodecChunking, sample_rate: int, hop: int) -> tuple[int, int, int]:
    chunk, context = chunking.frames(sample_rate, hop)
    return chunk, 0, context
