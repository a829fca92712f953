"""Datasets over folders of audio files: single files for codecs, twin trees for enhancement.

At construction both read only their files' headers (``folder_scan.scan_audio_headers``: frames,
rate, channels) and refuse to start on a missing, empty, unreadable or zero-length file unless told
to skip it. The lengths come from the headers, so a training excerpt is drawn and read without
decoding its whole file (``item_length`` and ``read_window``); ``codecgan scan DIR`` decodes every
file for users who want the full check up front.

A file that fails to decode when an item reads it (corrupt data after a valid header, NaN samples,
or a file deleted, truncated or rewritten while training runs) does not crash the run: the item is
replaced by the next readable item in index order (wrapping around; the substitute keeps its own
``index``), a ``RuntimeWarning`` names the file the first time it fails, and ``read_failures``
counts every failed read. We substitute rather than return an empty item because a zero-length
item would break collation and the losses downstream, and we count and warn rather than hide it so
the failure stays visible. With DataLoader workers the counter lives in each worker's copy of the
dataset.
"""

import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.data import Dataset

from codecgan.data.audio_reading import AudioReadError, WindowReader, read_audio, resampled_length
from codecgan.data.folder_scan import (
    AudioHeader,
    BadAudioError,
    BadAudioFile,
    list_audio_files,
    scan_audio_headers,
    unpaired_files,
)

SKIP_HINT = "Fix or remove them, or pass skip_bad_files=True to train without them."
__all__ = ["AudioFolder", "AudioReadError", "NoisyAudioFolder", "PairedAudioFolder", "read_audio"]


class _SubstitutingAudioDataset(Dataset):
    """Base for folder datasets: reads fall back to the next readable item."""

    def __init__(self, sample_rate: int, skipped: list[BadAudioFile]) -> None:
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be a positive number of Hz, got {sample_rate}.")
        self.sample_rate = sample_rate
        self.skipped = skipped
        self.read_failures = 0
        self._warned_paths: set[str] = set()
        self._window_reader = WindowReader(sample_rate)

    def item_length(self, index: int) -> int:
        """Item ``index``'s length in samples at ``sample_rate``, from the headers (nothing is read)."""
        raise NotImplementedError

    def _load(self, index: int) -> dict:
        """Read all of item ``index``; raises ``AudioReadError`` when a file is unreadable."""
        raise NotImplementedError

    def _load_window(self, index: int, start: int, frames: int) -> dict:
        """Read samples ``[start, start + frames)`` of item ``index``; raises ``AudioReadError``."""
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict:
        return self._first_readable(index, self._load)

    def read_window(self, index: int, start: int, frames: int) -> dict:
        """Item ``index`` cut to samples ``[start, start + frames)`` (fewer where it ends), reading only
        those; ``length`` is the number of samples returned.

        Like ``__getitem__``, an unreadable item is replaced by the next readable one, whose window
        starts at ``start`` moved back to fit inside it (0 when it is shorter than ``frames``).
        """

        def load(candidate: int) -> dict:
            fitted_start = max(0, min(start, self.item_length(candidate) - frames))
            return self._load_window(candidate, fitted_start, frames)

        return self._first_readable(index, load)

    def _first_readable(self, index: int, load: Callable[[int], dict]) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"Index {index} is out of range for {len(self)} items.")
        for offset in range(len(self)):
            candidate = (index + offset) % len(self)
            try:
                return load(candidate)
            except AudioReadError as error:
                self.read_failures += 1
                if error.path not in self._warned_paths:
                    self._warned_paths.add(error.path)
                    warnings.warn(
                        f"Could not read item {candidate} ({error}); using the next readable item "
                        f"instead. {self.read_failures} failed read(s) so far in this process.",
                        RuntimeWarning,
                        stacklevel=3,
                    )
        raise RuntimeError(f"None of the {len(self)} items could be read; see the warnings above.")

    def _length_at_rate(self, header: AudioHeader) -> int:
        return resampled_length(header.frames, header.sample_rate, self.sample_rate)


class AudioFolder(_SubstitutingAudioDataset):
    """Every .wav/.flac under ``root`` (recursive, sorted by relative path) as
    ``{"audio": [1, T] float32, "length": T, "index": i}``, mono, at ``sample_rate`` Hz.

    Raises ``BadAudioError`` listing every file whose header is broken unless ``skip_bad_files``;
    skipped files are in ``skipped``.
    """

    def __init__(self, root: str | Path, sample_rate: int, skip_bad_files: bool = False) -> None:
        files = list_audio_files(root)
        headers, bad_files = scan_audio_headers(files)
        if bad_files and not skip_bad_files:
            raise BadAudioError(bad_files, SKIP_HINT)
        super().__init__(sample_rate, bad_files)
        self.files = [path for path in files if str(path) in headers]
        if not self.files:
            raise ValueError(f"Every audio file under {str(root)!r} is broken; nothing is left.")
        self.headers = [headers[str(path)] for path in self.files]
        self.lengths = [self._length_at_rate(header) for header in self.headers]

    def __len__(self) -> int:
        return len(self.files)

    def item_length(self, index: int) -> int:
        return self.lengths[index]

    def _load(self, index: int) -> dict:
        audio = read_audio(self.files[index], self.sample_rate)
        return {"audio": audio, "length": audio.shape[-1], "index": index}

    def _load_window(self, index: int, start: int, frames: int) -> dict:
        audio = self._window_reader.read(self.files[index], self.headers[index], start, frames)
        return {"audio": audio, "length": audio.shape[-1], "index": index}


class NoisyAudioFolder(AudioFolder):
    """Noisy recordings without clean references (a test set that only a non-intrusive measure can score):
    ``AudioFolder``'s items with the audio as ``noisy`` (``{"noisy": [1, T], "length": T, "index": i}``), and
    ``names``, the files' paths relative to ``root``."""

    def __init__(self, root: str | Path, sample_rate: int, skip_bad_files: bool = False) -> None:
        super().__init__(root, sample_rate, skip_bad_files)
        self.root = Path(root)
        self.names = [path.relative_to(self.root).as_posix() for path in self.files]

    def _load(self, index: int) -> dict:
        return self._as_noisy(super()._load(index))

    def _load_window(self, index: int, start: int, frames: int) -> dict:
        return self._as_noisy(super()._load_window(index, start, frames))

    @staticmethod
    def _as_noisy(item: dict) -> dict:
        item["noisy"] = item.pop("audio")
        return item


class PairedAudioFolder(_SubstitutingAudioDataset):
    """Twin trees matched by relative path (VoiceBank-DEMAND layout) as ``{"noisy": [1, T],
    "clean": [1, T], "length": T, "index": i}``, mono, at ``sample_rate`` Hz; both signals are
    cut to the shorter one's length ``T``.

    Raises ``BadAudioError`` listing every unpaired file and every file whose header is broken
    unless ``skip_bad_files``, in which case a pair is dropped when either of its files is broken.
    """

    def __init__(
        self,
        noisy_root: str | Path,
        clean_root: str | Path,
        sample_rate: int,
        skip_bad_files: bool = False,
    ) -> None:
        self.noisy_root, self.clean_root = Path(noisy_root), Path(clean_root)
        noisy_files, clean_files, bad_files = unpaired_files(noisy_root, clean_root)
        headers, bad_headers = scan_audio_headers(noisy_files + clean_files)
        bad_files += bad_headers
        if bad_files and not skip_bad_files:
            raise BadAudioError(bad_files, SKIP_HINT)
        super().__init__(sample_rate, bad_files)
        clean_names = {path.relative_to(self.clean_root).as_posix() for path in clean_files}
        self.names = [
            name
            for name in (path.relative_to(self.noisy_root).as_posix() for path in noisy_files)
            if name in clean_names and str(self.noisy_root / name) in headers and str(self.clean_root / name) in headers
        ]
        if not self.names:
            raise ValueError(f"No usable noisy/clean pair under {str(noisy_root)!r} and {str(clean_root)!r}.")
        self.headers = [
            (headers[str(self.noisy_root / name)], headers[str(self.clean_root / name)]) for name in self.names
        ]
        self.lengths = [min(self._length_at_rate(noisy), self._length_at_rate(clean)) for noisy, clean in self.headers]

    def __len__(self) -> int:
        return len(self.names)

    def item_length(self, index: int) -> int:
        return self.lengths[index]

    def _load(self, index: int) -> dict:
        name = self.names[index]
        noisy = read_audio(self.noisy_root / name, self.sample_rate)
        clean = read_audio(self.clean_root / name, self.sample_rate)
        return self._pair(noisy, clean, index)

    def _load_window(self, index: int, start: int, frames: int) -> dict:
        name, (noisy_header, clean_header) = self.names[index], self.headers[index]
        noisy = self._window_reader.read(self.noisy_root / name, noisy_header, start, frames)
        clean = self._window_reader.read(self.clean_root / name, clean_header, start, frames)
        return self._pair(noisy, clean, index)

    @staticmethod
    def _pair(noisy: torch.Tensor, clean: torch.Tensor, index: int) -> dict:
        length = min(noisy.shape[-1], clean.shape[-1])
        return {"noisy": noisy[:, :length], "clean": clean[:, :length], "length": length, "index": index}
