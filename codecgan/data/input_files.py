"""The files an inference run reads (``codecgan enhance|encode|decode|predict``).

Inputs are files and folders (searched recursively). Each input gets an output name: a file given by
itself keeps its stem (``a/b/take1.flac`` -> ``take1``); a file found in a folder keeps its path inside
that folder (``data/x/y.wav`` under ``data`` -> ``x/y``), so a folder's layout is mirrored. Two inputs
with the same output name are refused before anything runs.

Audio is read with every channel and resampled to the model's rate (``torchaudio.functional.resample``);
``codecgan.inference.audio_writing`` writes the outputs, at that rate or back at the input file's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torchaudio.functional as audio_functional
from torch import Tensor

from codecgan.data.audio_reading import AudioReadError, decode_channels
from codecgan.data.file_tree import files_under, missing_file_problem, unlistable_folder_problem
from codecgan.data.folder_scan import AUDIO_SUFFIXES


@dataclass(frozen=True)
class InputFile:
    """One input: its ``path`` and its output ``name`` (relative to the output folder, without suffix)."""

    path: Path
    name: Path

    def output(self, folder: str | Path, suffix: str) -> Path:
        """``folder/name`` + ``suffix`` (appended: a name may hold dots, ``take.1``)."""
        return Path(folder) / f"{self.name.as_posix()}{suffix}"


@dataclass(frozen=True)
class ModelRateAudio:
    """A file's audio at the model's rate: ``audio`` ``[channels, T]`` float32 at ``sample_rate`` Hz, and what
    the file held (``file_frames`` per channel at ``file_sample_rate`` Hz)."""

    audio: Tensor
    sample_rate: int
    file_sample_rate: int
    file_frames: int


def list_inputs(paths: Iterable[str | Path], suffixes: Sequence[str] = AUDIO_SUFFIXES) -> list[InputFile]:
    """The inputs named by ``paths`` (files, or folders searched for ``suffixes``, case-insensitive, linked
    folders and files followed: ``file_tree``), in the order given, each folder's files sorted by relative path.

    A path that is not a folder is taken as a file even when it does not exist (reading it then fails
    and names it). Raises ``ValueError`` for a folder holding no such files or one that cannot be listed (no
    permission), and for two inputs with the same output name."""
    inputs: list[InputFile] = []
    for path in map(Path, paths):
        if not path.is_dir():
            inputs.append(InputFile(path, Path(path.stem)))
            continue
        try:
            found = files_under(path, suffixes)
        except OSError as error:
            raise ValueError(unlistable_folder_problem(path, error)) from None
        if not found:
            raise ValueError(f"Folder {str(path)!r} holds no {'/'.join(suffixes)} files; pass a folder that does.")
        inputs += [InputFile(file, file.relative_to(path).with_suffix("")) for file in found]
    first_with_name: dict[Path, Path] = {}
    for item in inputs:
        other = first_with_name.setdefault(item.name, item.path)
        if other != item.path:
            raise ValueError(
                f"{other} and {item.path} would both be written as {item.name}; give them in separate runs or "
                "rename one."
            )
    return inputs


def read_at_rate(path: str | Path, sample_rate: int) -> ModelRateAudio:
    """Every channel of ``path`` at ``sample_rate`` Hz. Raises ``AudioReadError`` (naming the path) when the
    file is missing or cannot be read as finite, non-empty audio."""
    missing = missing_file_problem(Path(path))
    if missing is not None:
        raise AudioReadError(path, missing)
    audio, file_rate = decode_channels(path)
    frames = audio.shape[-1]
    if file_rate != sample_rate:
        audio = audio_functional.resample(audio, orig_freq=file_rate, new_freq=sample_rate)
    return ModelRateAudio(audio, sample_rate, file_rate, frames)
