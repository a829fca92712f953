"""The audio an inference run writes: back at the input file's rate and length, or at the model's, as 32-bit
float WAV, which keeps an output that exceeds full scale instead of clipping it. A file appears under its name
only once it is whole (``codecgan.atomic_file``): a run that fails or is killed midway leaves no truncated WAV
that looks finished.
"""

from __future__ import annotations

from pathlib import Path

import soundfile
import torch
import torchaudio.functional as audio_functional
from torch import Tensor

from codecgan.atomic_file import written_atomically


def to_file_rate(audio: Tensor, sample_rate: int, file_sample_rate: int, file_frames: int) -> Tensor:
    """``audio`` ``[channels, T]`` at ``sample_rate`` back at the file's rate and exact length:
    ``[channels, file_frames]`` (resampling rounds lengths up, so at most a sample is cut or zero-padded)."""
    if file_sample_rate != sample_rate:
        audio = audio_functional.resample(audio, orig_freq=sample_rate, new_freq=file_sample_rate)
    return torch.nn.functional.pad(audio, (0, max(0, file_frames - audio.shape[-1])))[..., :file_frames]


def write_wav(path: str | Path, audio: Tensor, sample_rate: int) -> None:
    """Write ``audio`` ``[channels, T]`` as a 32-bit float WAV, whole or not at all, creating the folders on the
    way."""
    samples = audio.detach().float().cpu().T.numpy()
    with written_atomically(path) as temporary:
        # The format is named: the temporary name ends in .tmp, from which soundfile cannot tell it.
        soundfile.write(str(temporary), samples, sample_rate, format="WAV", subtype="FLOAT")
