"""Reading audio files as mono float32 ``[1, T]`` at a target rate: whole files, or one window of one
(and, for inference, every channel of a file: ``decode_channels``).

A window read seeks to the frames it needs (``soundfile.read(start=, stop=)``) and downmixes and
resamples only those, so an item costs the same whatever the length of its file. When the file's
rate differs from the target rate, the window is read with a margin of whole resampler blocks on
each side, aligned to the block grid of a whole-file resample, so the samples it returns equal (to
float rounding) those of resampling the whole file and cutting the window out of it.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import soundfile
import torch
import torchaudio.functional as audio_functional
from torchaudio.transforms import Resample

from codecgan.data.folder_scan import AudioHeader


class AudioReadError(OSError):
    """An audio file could not be read as finite, non-empty audio."""

    def __init__(self, path: str | Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem


def resampled_length(frames: int, file_rate: int, sample_rate: int) -> int:
    """Samples at ``sample_rate`` of ``frames`` frames at ``file_rate``, as torchaudio's resample
    returns them (rounded up)."""
    divisor = math.gcd(file_rate, sample_rate)
    return -(-frames * (sample_rate // divisor) // (file_rate // divisor))


def decode_mono(path: str | Path, start: int = 0, stop: int | None = None) -> tuple[torch.Tensor, int]:
    """Frames ``[start, stop)`` of ``path`` averaged over channels, ``[1, frames]`` float32, and the
    file's rate. Raises ``AudioReadError`` (naming the path) when nothing can be read or a sample
    is not finite."""
    samples, file_rate = _decode_checked(path, start, stop)
    # A matrix-vector product: numpy's mean over the channel axis is 20 times slower.
    downmix = np.full(samples.shape[1], 1.0 / samples.shape[1], dtype=np.float32)
    return torch.from_numpy(samples @ downmix).unsqueeze(0), file_rate


def decode_channels(path: str | Path) -> tuple[torch.Tensor, int]:
    """Every channel of ``path``, ``[channels, frames]`` float32, and the file's rate; raises ``AudioReadError``
    as ``decode_mono`` does."""
    samples, file_rate = _decode_checked(path, 0, None)
    return torch.from_numpy(np.ascontiguousarray(samples.T)), file_rate


def _decode_checked(path: str | Path, start: int, stop: int | None) -> tuple[np.ndarray, int]:
    """Frames ``[start, stop)`` as ``[frames, channels]`` float32 and the file's rate, or ``AudioReadError``."""
    try:
        samples, file_rate = soundfile.read(str(path), start=start, stop=stop, dtype="float32", always_2d=True)
    except (RuntimeError, OSError, ValueError) as error:
        raise AudioReadError(path, f"{type(error).__name__}: {error}") from error
    if samples.shape[0] == 0:
        where = "" if start == 0 else f" from frame {start}"
        raise AudioReadError(path, f"zero-length audio (0 frames{where})")
    if not np.isfinite(samples).all():
        raise AudioReadError(path, "contains non-finite samples (NaN or inf)")
    return samples, int(file_rate)


def read_audio(path: str | Path, sample_rate: int) -> torch.Tensor:
    """Read all of ``path`` as mono float32 ``[1, T]`` at ``sample_rate`` Hz.

    Channels are averaged; a file at another rate is resampled with
    ``torchaudio.functional.resample``. Raises ``AudioReadError`` (naming the path) when the
    file cannot be read, holds no frames or holds non-finite samples.
    """
    audio, file_rate = decode_mono(path)
    if file_rate != sample_rate:
        audio = audio_functional.resample(audio, orig_freq=file_rate, new_freq=sample_rate)
    return audio


class WindowReader:
    """Reads windows of files at ``sample_rate`` Hz; keeps one resampler (its kernel) per file rate."""

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self._resamplers: dict[int, Resample] = {}

    def read(self, path: str | Path, header: AudioHeader, start: int, frames: int) -> torch.Tensor:
        """Samples ``[start, start + frames)`` at ``sample_rate`` of the file ``header`` describes,
        as mono float32 ``[1, n]``; ``n < frames`` only where the file ends first."""
        if header.sample_rate == self.sample_rate:
            stop = min(start + frames, header.frames)
            return decode_mono(path, start, stop)[0]
        resampler = self._resampler(header.sample_rate)
        divisor = math.gcd(header.sample_rate, self.sample_rate)
        block_in, block_out = header.sample_rate // divisor, self.sample_rate // divisor
        # Output block b depends on input frames [b*block_in - width, (b+1)*block_in + width).
        margin = -(-resampler.width // block_in)
        first_block = start // block_out - margin
        end_block = -(-(start + frames) // block_out) + margin
        read_start = max(0, first_block * block_in)
        read_stop = min(header.frames, end_block * block_in)
        audio, _ = decode_mono(path, read_start, read_stop)
        offset = start - (read_start // block_in) * block_out
        window = resampler(audio)[:, offset : offset + frames]
        if window.shape[-1] == 0:
            raise AudioReadError(path, f"no audio at sample {start} (the header promised {header.frames} frames)")
        return window

    def _resampler(self, file_rate: int) -> Resample:
        if file_rate not in self._resamplers:
            self._resamplers[file_rate] = Resample(orig_freq=file_rate, new_freq=self.sample_rate)
        return self._resamplers[file_rate]
