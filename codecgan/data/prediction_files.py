"""The inputs of ``codecgan predict``: each file whole, with every channel, at the model's rate.

An item is a dict: ``audio`` ``[channels, T]`` float32 at ``sample_rate``, ``name`` (the output name,
see ``input_files``), ``path``, ``file_sample_rate``, ``file_frames`` and ``index``. A file that cannot be
read gives an item with ``error`` (a sentence) instead of ``audio``, so that the run goes on and the
prediction writer names it at the end. Items are not batched (``batch_size=1`` with ``collate=one_item``):
files differ in length and channels, and each is processed in windows anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from codecgan.data.audio_reading import AudioReadError
from codecgan.data.input_files import list_inputs, read_at_rate


def one_item(items: list[dict[str, Any]]) -> dict[str, Any]:
    """The collate function of batches of one item: the item itself, unbatched."""
    (item,) = items
    return item


class PredictionFiles(Dataset):
    """The files and folders ``paths`` (folders searched for .wav/.flac), read at ``sample_rate`` Hz.

    Raises ``ValueError`` for a folder without audio and for two inputs with the same output name."""

    def __init__(self, paths: Sequence[str | Path], sample_rate: int) -> None:
        self.inputs = list_inputs(paths)
        self.sample_rate = sample_rate

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.inputs[index]
        described = {"path": str(item.path), "name": item.name.as_posix(), "index": index}
        try:
            loaded = read_at_rate(item.path, self.sample_rate)
        except AudioReadError as error:
            return {**described, "error": error.problem}
        return {
            **described,
            "audio": loaded.audio,
            "file_sample_rate": loaded.file_sample_rate,
            "file_frames": loaded.file_frames,
        }
