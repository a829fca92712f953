"""Processing long audio in fixed-length windows, so that memory stays bounded whatever the file's length.

A model whose memory grows with its input (CMGAN's attention over time holds ``frames x frames`` logits
per frequency bin: about 1.6 GB for 10 s at CMGAN's size) runs on windows of ``chunk`` samples, one at a
time. Each window gives the output of a stretch in its middle: ``context`` samples at each of its sides
are seen by the model but their output is dropped, so that a model with a bounded receptive field
(a convolutional codec) reproduces whole-file processing exactly once ``context`` covers that field.
Consecutive stretches overlap by ``overlap`` samples, over which the earlier one fades out and the later
one fades in with weights ``cos²`` and ``sin²`` that sum to exactly 1: a model that gives the same output
in both windows is reproduced exactly, and one that differs slightly (CMGAN: per-window level
normalisation, attention over the window) changes over ``overlap`` samples instead of jumping.

Every window is exactly ``chunk`` samples long (the first and last are placed against the file's ends,
where the samples they do not need act as extra context), so the model never sees a short or padded
window. ``align`` puts every window's start on a grid (a codec's hop length), so that a window's frames
are the whole file's frames.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class ChunkWindow:
    """One window: the model reads ``[start, stop)`` and its output counts over ``[keep_start, keep_stop)``."""

    start: int
    stop: int
    keep_start: int
    keep_stop: int


def check_chunking(chunk: int, overlap: int, context: int = 0) -> None:
    """Raise ``ValueError`` unless windows of ``chunk`` leave room for both contexts and two cross-fades."""
    if chunk < 1 or overlap < 0 or context < 0 or 2 * overlap + 2 * context > chunk - 1:
        raise ValueError(
            f"Chunks need 2 * overlap + 2 * context < chunk (and none negative), got chunk {chunk}, overlap "
            f"{overlap} and context {context}."
        )


def chunk_windows(length: int, chunk: int, overlap: int = 0, context: int = 0) -> list[ChunkWindow]:
    """The windows that cover ``length`` samples: one when ``length <= chunk``.

    Stretches start ``chunk - overlap - 2 * context`` samples apart; window ``i`` reads ``context``
    samples beyond both ends of its stretch (more at the file's ends), and the last window ends at
    ``length``."""
    check_chunking(chunk, overlap, context)
    if length <= chunk:
        return [ChunkWindow(0, length, 0, length)]
    spacing = chunk - overlap - 2 * context
    half = overlap // 2
    # The last seam lies late enough that the window ending at `length` still holds its context.
    seams = [index * spacing for index in range(1, math.ceil((length - chunk + half + context) / spacing) + 1)]
    keep_starts = [0] + [seam - half for seam in seams]
    keep_stops = [seam - half + overlap for seam in seams] + [length]
    windows = []
    for keep_start, keep_stop in zip(keep_starts, keep_stops):
        start = min(max(0, keep_start - context), length - chunk)
        windows.append(ChunkWindow(start, start + chunk, keep_start, keep_stop))
    return windows


def raised_cosine_fade_in(overlap: int, device: torch.device | str = "cpu") -> Tensor:
    """``sin²`` from 0 towards 1 over ``overlap`` samples (midpoint-sampled); its fade-out twin is ``1 - fade_in``."""
    position = (torch.arange(overlap, device=device, dtype=torch.float64) + 0.5) / overlap
    return torch.sin(0.5 * math.pi * position).square().float()


def process_in_chunks(
    process: Callable[[Tensor], Tensor],
    audio: Tensor,
    chunk: int,
    overlap: int,
    context: int = 0,
    align: int = 1,
    on_chunk: Callable[[int, int], None] | None = None,
) -> Tensor:
    """``process`` applied to ``audio`` ``[B, 1, T]`` window by window, outputs cross-faded: ``[B, 1, T]``.

    ``process`` maps ``[B, 1, n]`` to ``[B, 1, n]``; it is called once per window, in order, so only one
    window's activations exist at a time. ``chunk``, ``overlap`` and ``context`` are in samples and must be
    multiples of ``align``; the input is zero-padded on the right to a multiple of ``align`` (as a codec
    pads it to its hop) and the output cropped back. ``on_chunk(done, total)`` is called after each window
    (for a progress bar).
    """
    if align < 1 or chunk % align or overlap % align or context % align:
        raise ValueError(f"chunk {chunk}, overlap {overlap} and context {context} must be multiples of align {align}.")
    length = audio.shape[-1]
    padded = F.pad(audio, (0, -length % align))
    windows = chunk_windows(padded.shape[-1] // align, chunk // align, overlap // align, context // align)
    fade_in = raised_cosine_fade_in(overlap, audio.device)
    output = None
    for index, window in enumerate(windows):
        start, keep_start, keep_stop = window.start * align, window.keep_start * align, window.keep_stop * align
        estimate = process(padded[..., start : window.stop * align])[..., keep_start - start : keep_stop - start]
        weight = torch.ones(keep_stop - keep_start, device=audio.device)
        if index > 0:
            weight[:overlap] = fade_in
        if index < len(windows) - 1:
            weight[weight.shape[0] - overlap :] = 1 - fade_in
        if output is None:
            output = estimate.new_zeros(*estimate.shape[:-1], padded.shape[-1])
        output[..., keep_start:keep_stop] += estimate * weight.to(estimate.dtype)
        if on_chunk is not None:
            on_chunk(index + 1, len(windows))
    return output[..., :length]
