"""Listing the files under a folder as shared clusters lay data out: split folders and files that are symbolic
links into a dataset store (``train/clean -> /datasets/vbd/clean_trainset_wav``).

``Path.rglob`` on Python 3.11 does not descend into linked folders, so a tree of links looks empty to it.
``files_under`` follows linked folders and linked files; a link back to a folder it is already inside (a link
cycle) is not entered again, so a cycle neither hangs the walk nor lists a file twice under ever longer names.
A link whose target is gone is listed like a file, so that the header check reads it and names it
(``missing_file_problem``) instead of the file quietly vanishing from the data set.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path


def files_under(root: Path, suffixes: Sequence[str]) -> list[Path]:
    """Every file under ``root`` whose suffix is one of ``suffixes`` (lower-case, case-insensitive match), linked
    folders and files followed, as paths under ``root`` (never resolved, so ``path.relative_to(root)`` holds),
    sorted by relative path. Dangling links with such a suffix are included."""
    found: list[Path] = []
    _visit(root, frozenset({_identity(root)}), tuple(suffix.lower() for suffix in suffixes), found)
    return sorted(found, key=lambda path: path.relative_to(root).as_posix())


def _identity(folder: Path) -> tuple[int, int]:
    status = folder.stat()  # follows links: the folder a link leads to
    return status.st_dev, status.st_ino


def _visit(folder: Path, ancestors: frozenset[tuple[int, int]], suffixes: tuple[str, ...], found: list[Path]) -> None:
    with os.scandir(folder) as entries:
        for entry in entries:
            path = folder / entry.name
            if entry.is_dir(follow_symlinks=True):
                identity = _identity(path)
                if identity not in ancestors:  # else a link cycle: this folder is being walked already
                    _visit(path, ancestors | {identity}, suffixes, found)
            elif path.suffix.lower() in suffixes and (entry.is_file(follow_symlinks=True) or entry.is_symlink()):
                found.append(path)


def unlistable_folder_problem(root: Path, error: OSError) -> str:
    """A sentence for ``files_under(root, ...)`` failing with ``error`` (a folder under ``root`` that this user may
    not list, a lost network mount): names the folder and the fix."""
    folder = str(error.filename or root)
    where = "" if folder == str(root) else f" (under {str(root)!r})"
    return (
        f"Folder {folder!r}{where} cannot be listed: {error.strerror or error}. Give this user read and search "
        "access to it (chmod u+rx), or leave it out."
    )


def missing_file_problem(path: Path) -> str | None:
    """Why ``path`` names no readable regular file, as a sentence, or ``None`` when it is one."""
    if path.is_file():
        return None
    if path.is_symlink():
        return f"dangling symbolic link (its target {os.readlink(path)!r} does not exist)"
    if path.is_dir():
        return "a folder, not an audio file"
    return "file does not exist"
