"""Running a speech enhancer on a whole recording, chunk by chunk.

Each chunk is enhanced as the generator enhances any input: ``CMGANGenerator.forward`` scales it to unit
RMS first, so every chunk reaches the network at the level it was trained at. The alternative, one gain
for the whole file, was measured worse on the tiny enhancer trained 100 steps (12 s of speech in pink
noise at 5 dB, 4 s chunks, 1 s overlap): 16.4 dB SNR against whole-file processing instead of 20.5 dB,
SI-SDR to the clean speech 8.17 instead of 8.30 dB (whole file: 8.07 dB; PESQ 1.76 in all three).

Windows carry no dropped context (``process_in_chunks``'s ``context``): CMGAN's differences between a
window and the whole file come from its per-window level and attention, not from the window's edges, and
on the same recording 0.25 s and 0.5 s of context gave 19.3 and 20.4 dB against 20.5 dB without, at up to
twice the compute. Shorter windows differ more: 2 s windows with 0.5 s overlap gave 18.0 dB.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from codecgan.inference.chunking import check_chunking, process_in_chunks


@dataclass(frozen=True)
class EnhanceSettings:
    """How a recording is cut for the enhancer.

    chunk_seconds: chunk length. CMGAN's attention holds ``frames x frames`` logits per frequency bin:
        about 260 MB per channel for 4 s at CMGAN's size, 1.6 GB for 10 s.
    overlap_seconds: cross-fade between consecutive chunks, less than half a chunk.
    """

    chunk_seconds: float = 4.0
    overlap_seconds: float = 1.0

    def samples(self, sample_rate: int) -> tuple[int, int]:
        """``(chunk, overlap)`` in samples at ``sample_rate``; raises ``ValueError`` when they do not fit."""
        chunk, overlap = round(self.chunk_seconds * sample_rate), round(self.overlap_seconds * sample_rate)
        check_chunking(chunk, overlap)
        return chunk, overlap


@torch.no_grad()
def enhance(
    generator: nn.Module,
    audio: Tensor,
    sample_rate: int,
    settings: EnhanceSettings = EnhanceSettings(),
    on_chunk: Callable[[int, int], None] | None = None,
) -> Tensor:
    """Enhanced ``audio`` ``[B, 1, T]`` at ``sample_rate`` (the generator's): ``[B, 1, T]``.

    The ``B`` rows (a file's channels) are enhanced together, each normalised on its own. ``on_chunk(done,
    total)`` is called after each chunk."""
    chunk, overlap = settings.samples(sample_rate)
    audio = audio.to(next(generator.parameters()).device, torch.float32)
    return process_in_chunks(lambda piece: generator(piece).audio, audio, chunk, overlap, on_chunk=on_chunk)
