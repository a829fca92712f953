"""Where the enhancement data module finds the folders it mixes, and its mixing options checked: every mistake a
``ConfigError`` that names the key and the fix."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from codecgan.config_error import ConfigError
from codecgan.data.folder_scan import BadAudioError
from codecgan.data.mixing import MixingRecipe

KEY = "data.init_args."


@contextmanager
def naming_the_key(name: str) -> Iterator[None]:
    """A folder that is missing, empty or cannot be listed becomes a ``ConfigError`` naming ``data.init_args.<name>``
    (a broken file stays a ``BadAudioError``, which lists the files)."""
    try:
        yield
    except BadAudioError:
        raise
    except (OSError, ValueError) as error:
        raise ConfigError(f"{KEY}{name}: {error}") from None


def mixing_recipe(snr_db_range, level_db_range, reverb_probability: float) -> MixingRecipe:
    """The recipe, or a ``ConfigError`` naming the bad key."""
    try:
        return MixingRecipe(snr_db_range, level_db_range, reverb_probability)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{KEY}{error}") from None


def check_mixing_keys(
    dirs: dict[str, str | None],
    clean_dir: str | None,
    noise_dirs: list[str] | None,
    rir_dir: str | None,
    reverb_probability: float,
) -> None:
    """A ``ConfigError`` naming the keys for mixing options that cannot work together (no folder is looked at).
    ``dirs``: the pair folders by split ("train", "val", "test")."""
    if clean_dir is None:
        if noise_dirs or rir_dir:
            raise ConfigError(f"{KEY}noise_dirs and {KEY}rir_dir need {KEY}clean_dir, the clean speech to mix.")
        return
    if not noise_dirs:
        raise ConfigError(f"{KEY}clean_dir needs {KEY}noise_dirs: a list of noise folders (with train/ val/ test/).")
    if isinstance(noise_dirs, str):
        raise ConfigError(f"{KEY}noise_dirs must be a list of folders, got the string {noise_dirs!r}.")
    if reverb_probability > 0 and rir_dir is None:
        raise ConfigError(f"{KEY}reverb_probability is {reverb_probability}: set {KEY}rir_dir, or set it to 0.")
    if dirs["train"]:
        raise ConfigError(
            f"{KEY}train_dir and {KEY}clean_dir are both given: train either on the noisy/clean pairs of train_dir "
            "or on clean_dir mixed with noise; remove one."
        )


def mixing_folders(
    dirs: dict[str, str | None],
    clean_dir: str | None,
    noise_dirs: list[str] | None,
    rir_dir: str | None,
    reverb_probability: float,
) -> dict[str, dict[str, list[str]]]:
    """For each split mixed on the fly, its ``clean``, ``noise`` and ``rir`` folders (``<folder>/<split>``); a
    ``ConfigError`` naming the keys for a layout that cannot work. A validation or test split with a pair folder in
    ``dirs`` is not mixed."""
    check_mixing_keys(dirs, clean_dir, noise_dirs, rir_dir, reverb_probability)
    if clean_dir is None:
        return {}
    folders = {}
    for split in dirs:
        clean = Path(clean_dir) / split
        if dirs[split] and clean.is_dir():
            raise ConfigError(
                f"{KEY}{split}_dir and {KEY}clean_dir (which has a {split}/ folder) both give the {split} split; "
                "remove one."
            )
        if dirs[split]:
            continue
        if not clean.is_dir():
            raise ConfigError(
                f"{KEY}clean_dir: {str(clean)!r} is not a folder; add it, or give {KEY}{split}_dir (noisy/clean pairs)."
                if split != "train"
                else f"{KEY}clean_dir: {str(clean)!r} is not a folder of training speech."
            )
        mixed = {"clean": [str(clean)], "noise": [str(Path(folder) / split) for folder in noise_dirs], "rir": []}
        if rir_dir is not None and reverb_probability > 0:
            mixed["rir"] = [str(Path(rir_dir) / split)]
        for name, paths in (("noise_dirs", mixed["noise"]), ("rir_dir", mixed["rir"])):
            missing = [path for path in paths if not Path(path).is_dir()]
            if missing:
                raise ConfigError(f"{KEY}{name}: {missing[0]!r} is not a folder; every one needs a {split}/ folder.")
        folders[split] = mixed
    return folders
