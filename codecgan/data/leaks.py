"""Evaluation files that are training files: the same file under another path, or the same content under another name.

A model scored on files it trained on measures memorisation; a checkpoint chosen on the test set has seen the test
set (both reported in GAN audio recipes: validating on VoiceBank's test set, a validation list drawn from the training
folder). The check is cheap enough to run at every start on thousands of files: one ``os.stat`` per file gives its
identity (device and inode: the same file through any path, symlink or hard link) and its size, and only files whose
size equals a file's of the other split are read, and only their first and last 64 KiB (all of a file up to 128 KiB).
Two audio files of the same size whose first and last 64 KiB agree are taken to be the same recording; the same audio
in another format or at another rate is not found.
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from codecgan.data.folder_scan import list_audio_files

# Bytes read from each end of a file whose size matches a file of the other split.
EDGE_BYTES = 64 * 1024


@dataclass(frozen=True)
class SharedFile:
    """A file of the checked split (``path``) that is a file of the other split (``twin``): the same file
    (``same_file``) or another file with the same content. ``name`` and ``twin_name`` are the paths relative to their
    split's folder."""

    path: str
    twin: str
    same_file: bool
    name: str
    twin_name: str


@dataclass
class DataLeakReport:
    """What the start-of-fit check found.

    ``training_files``: for "val" and "test", their files that are training files. ``val_test_files``: validation
    files that are test files. ``same_val_test_folder``: the validation folder is the test folder.
    ``files_checked``: files listed in all splits.
    """

    training_files: dict[str, list[SharedFile]] = field(default_factory=dict)
    val_test_files: list[SharedFile] = field(default_factory=list)
    same_val_test_folder: bool = False
    files_checked: int = 0

    @property
    def leaked_count(self) -> int:
        """Validation and test files that are training files."""
        return sum(len(files) for files in self.training_files.values())

    def examples(self, limit: int) -> list[str]:
        """Up to ``limit`` descriptions, each a file with its twin relative to their folders, e.g.
        'val file clean/p287_001.wav is training file clean/p226_004.wav (same content)'."""
        named = [
            f"{split} file {shared.name} is training file {shared.twin_name}"
            + ("" if shared.same_file else " (same content)")
            for split, files in self.training_files.items()
            for shared in files
        ]
        named += [
            f"val file {shared.name} is test file {shared.twin_name}" + ("" if shared.same_file else " (same content)")
            for shared in self.val_test_files
        ]
        return named[:limit]


class _Files:
    """The audio files of one split's folders with their identity and size, and content keys computed on demand.
    Names are relative to the folder, or to the folders' common parent when there are several (a split mixed on
    the fly: ``clean/train/a.wav``, ``noise/train/fan.wav``)."""

    def __init__(self, roots: list[str]) -> None:
        self.root = roots[0] if len(roots) == 1 else os.path.commonpath([os.path.abspath(root) for root in roots])
        # A dangling link is no file to compare; the data module's header check names it as a bad file.
        listed = [path for root in roots for path in list_audio_files(root)]
        if len(roots) > 1:
            listed = [path.absolute() for path in listed]
        self.paths = [str(path) for path in listed if path.exists()]
        stats = [os.stat(path) for path in self.paths]
        self.identity = {(stat.st_dev, stat.st_ino): path for stat, path in zip(stats, self.paths)}
        self.sizes = {path: stat.st_size for stat, path in zip(stats, self.paths)}
        self.by_size: dict[int, list[str]] = defaultdict(list)
        for path, size in self.sizes.items():
            self.by_size[size].append(path)
        self._keys: dict[str, bytes] = {}
        self._stats = dict(zip(self.paths, stats))

    def content_key(self, path: str) -> bytes:
        if path not in self._keys:
            self._keys[path] = content_key(path, self.sizes[path])
        return self._keys[path]

    def stat(self, path: str) -> os.stat_result:
        return self._stats[path]

    def name(self, path: str) -> str:
        return Path(path).relative_to(self.root).as_posix()


def content_key(path: str | Path, size: int) -> bytes:
    """The size and a BLAKE2b digest of the first and last ``EDGE_BYTES`` (the whole file when it is at most twice
    that long)."""
    digest = hashlib.blake2b(size.to_bytes(8, "little"), digest_size=16)
    with open(path, "rb") as handle:
        if size <= 2 * EDGE_BYTES:
            digest.update(handle.read())
        else:
            digest.update(handle.read(EDGE_BYTES))
            handle.seek(size - EDGE_BYTES)
            digest.update(handle.read(EDGE_BYTES))
    return digest.digest()


def shared_files(checked: _Files, reference: _Files) -> list[SharedFile]:
    """The files of ``checked`` that are files of ``reference``: the same file, or the same size and content key."""
    shared = []
    for path in checked.paths:
        stat = checked.stat(path)
        twin = reference.identity.get((stat.st_dev, stat.st_ino))
        if twin is not None:
            shared.append(SharedFile(path, twin, True, checked.name(path), reference.name(twin)))
            continue
        candidates = reference.by_size.get(stat.st_size, [])
        if candidates:
            key = checked.content_key(path)
            twin = next((other for other in candidates if reference.content_key(other) == key), None)
            if twin is not None:
                shared.append(SharedFile(path, twin, False, checked.name(path), reference.name(twin)))
    return shared


def find_data_leaks(dirs: Mapping[str, str | Sequence[str] | None]) -> DataLeakReport | None:
    """Compare the folders of ``dirs`` ("train", "val", "test" -> a folder, a list of folders, or None or [] for
    synthetic data): validation and test files that are training files, and validation files that are test files.

    None when fewer than two splits come from folders (nothing to compare). Folders are listed as the datasets list
    them (every .wav/.flac below, recursively: the enhancement family's noisy/ and clean/ trees both; for a split
    mixed on the fly its clean, noise and room-response folders, so a noise file in both the training and the test
    noise folders is found).
    """
    folders = {
        split: [directory] if isinstance(directory, str) else list(directory)
        for split, directory in dirs.items()
        if directory
    }
    if len(folders) < 2:
        return None
    files = {split: _Files(roots) for split, roots in folders.items()}
    report = DataLeakReport(files_checked=sum(len(f.paths) for f in files.values()))
    if "train" in files:
        for split in ("val", "test"):
            if split in files:
                report.training_files[split] = shared_files(files[split], files["train"])
    if "val" in files and "test" in files:
        report.val_test_files = shared_files(files["val"], files["test"])
        report.same_val_test_folder = _same_folder(folders["val"][0], folders["test"][0])
    return report


def _same_folder(first: str, second: str) -> bool:
    try:
        return os.path.samefile(first, second)
    except OSError:
        return False


__all__ = ["DataLeakReport", "SharedFile", "content_key", "find_data_leaks", "shared_files"]
