"""Datasets over folders of audio files: single files for codecs, twin trees for enhancement.

Both scan every file at construction (see ``folder_scan``) and refuse to start on broken data
unless told to skip it.

A file that breaks *after* the scan (deleted, truncated or rewritten while training runs) does
not crash the run: the item is replaced by the next readable item in index order (wrapping
around; the substitute keeps its own ``index``), a ``RuntimeWarning`` names the file the first
time it fails, and ``read_failures`` counts every failed read. We substitute rather than return
an empty item because a zero-length item would break collation and the losses downstream, and
we count and warn rather than hide it so the failure stays visible. With DataLoader workers the
counter lives in each worker's copy of the dataset.
"""

import warnings
from pathlib import Path

import numpy as np
import soundfile
import torch
import torchaudio.functional as audio_functional
from torch.utils.data import Dataset

from codecgan.data.folder_scan import (
    BadAudioError,
    BadAudioFile,
    list_audio_files,
    paired_relative_paths,
    scan_audio_files,
    scan_paired,
)

SKIP_HINT = "Fix or remove them, or pass skip_bad_files=True to train without them."


class AudioReadError(OSError):
    """An audio file could not be read as finite, non-empty audio."""

    def __init__(self, path: str | Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem


def read_audio(path: str | Path, sample_rate: int) -> torch.Tensor:
    """Read ``path`` as mono float32 ``[1, T]`` at ``sample_rate`` Hz.

    Channels are averaged; a file at another rate is resampled with
    ``torchaudio.functional.resample``. Raises ``AudioReadError`` (naming the path) when the
    file cannot be read, holds no frames or holds non-finite samples.
    """
    try:
        samples, file_rate = soundfile.read(path, dtype="float32", always_2d=True)
    except (RuntimeError, OSError, ValueError) as error:
        raise AudioReadError(path, f"{type(error).__name__}: {error}") from error
    if samples.shape[0] == 0:
        raise AudioReadError(path, "zero-length audio (0 frames)")
    if not np.isfinite(samples).all():
        raise AudioReadError(path, "contains non-finite samples (NaN or inf)")
    audio = torch.from_numpy(samples.mean(axis=1)).unsqueeze(0)
    if file_rate != sample_rate:
        audio = audio_functional.resample(audio, orig_freq=file_rate, new_freq=sample_rate)
    return audio


class _SubstitutingAudioDataset(Dataset):
    """Base for folder datasets: ``__getitem__`` falls back to the next readable item."""

    def __init__(self, sample_rate: int, skipped: list[BadAudioFile]) -> None:
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be a positive number of Hz, got {sample_rate}.")
        self.sample_rate = sample_rate
        self.skipped = skipped
        self.read_failures = 0
        self._warned_paths: set[str] = set()

    def _load(self, index: int) -> dict:
        """Read item ``index``; raises ``AudioReadError`` when a file is unreadable."""
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"Index {index} is out of range for {len(self)} items.")
        for offset in range(len(self)):
            candidate = (index + offset) % len(self)
            try:
                return self._load(candidate)
            except AudioReadError as error:
                self.read_failures += 1
                if error.path not in self._warned_paths:
                    self._warned_paths.add(error.path)
                    warnings.warn(
                        f"Could not read item {candidate} ({error}); using the next readable item "
                        f"instead. {self.read_failures} failed read(s) so far in this process.",
                        RuntimeWarning,
                        stacklevel=2,
                    )
        raise RuntimeError(f"None of the {len(self)} items could be read; see the warnings above.")


class AudioFolder(_SubstitutingAudioDataset):
    """Every .wav/.flac under ``root`` (recursive, sorted by relative path) as
    ``{"audio": [1, T] float32, "length": T, "index": i}``, mono, at ``sample_rate`` Hz.

    Raises ``BadAudioError`` listing every broken file unless ``skip_bad_files``; skipped files
    are in ``skipped``.
    """

    def __init__(self, root: str | Path, sample_rate: int, skip_bad_files: bool = False) -> None:
        files = list_audio_files(root)
        bad_files = scan_audio_files(files)
        if bad_files and not skip_bad_files:
            raise BadAudioError(bad_files, SKIP_HINT)
        super().__init__(sample_rate, bad_files)
        bad_paths = {bad.path for bad in bad_files}
        self.files = [path for path in files if str(path) not in bad_paths]
        if not self.files:
            raise ValueError(f"Every audio file under {str(root)!r} is broken; nothing is left.")

    def __len__(self) -> int:
        return len(self.files)

    def _load(self, index: int) -> dict:
        audio = read_audio(self.files[index], self.sample_rate)
        return {"audio": audio, "length": audio.shape[-1], "index": index}


class PairedAudioFolder(_SubstitutingAudioDataset):
    """Twin trees matched by relative path (VoiceBank-DEMAND layout) as ``{"noisy": [1, T],
    "clean": [1, T], "length": T, "index": i}``, mono, at ``sample_rate`` Hz; both signals are
    cut to the shorter one's length ``T``.

    Raises ``BadAudioError`` listing every unpaired or broken file unless ``skip_bad_files``,
    in which case a pair is dropped when either of its files is broken.
    """

    def __init__(
        self,
        noisy_root: str | Path,
        clean_root: str | Path,
        sample_rate: int,
        skip_bad_files: bool = False,
    ) -> None:
        bad_files = scan_paired(noisy_root, clean_root)
        if bad_files and not skip_bad_files:
            raise BadAudioError(bad_files, SKIP_HINT)
        super().__init__(sample_rate, bad_files)
        self.noisy_root, self.clean_root = Path(noisy_root), Path(clean_root)
        bad_paths = {bad.path for bad in bad_files}
        self.names = [
            name
            for name in paired_relative_paths(noisy_root, clean_root)
            if str(self.noisy_root / name) not in bad_paths
            and str(self.clean_root / name) not in bad_paths
        ]
        if not self.names:
            raise ValueError(
                f"No usable noisy/clean pair under {str(noisy_root)!r} and {str(clean_root)!r}."
            )

    def __len__(self) -> int:
        return len(self.names)

    def _load(self, index: int) -> dict:
        name = self.names[index]
        noisy = read_audio(self.noisy_root / name, self.sample_rate)
        clean = read_audio(self.clean_root / name, self.sample_rate)
        length = min(noisy.shape[-1], clean.shape[-1])
        return {
            "noisy": noisy[:, :length],
            "clean": clean[:, :length],
            "length": length,
            "index": index,
        }
