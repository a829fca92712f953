"""Batches of items of different lengths (whole validation utterances): right-padded, true lengths kept."""

import torch.nn.functional as functional
from torch.utils.data import default_collate

from codecgan.data.item_audio import audio_keys


def collate_padded(items: list[dict]) -> dict:
    """Stack ``items`` into a batch, right-padding every audio tensor with zeros to the longest item
    of the batch: audio ``[B, 1, T_max]``, ``length`` ``[B]`` int64 (each item's true samples),
    ``index`` ``[B]``. Items of equal length give exactly what ``default_collate`` gives.
    """
    keys = audio_keys(items[0])
    width = max(item[keys[0]].shape[-1] for item in items)
    padded = [
        dict(item, **{key: functional.pad(item[key], (0, width - item[key].shape[-1])) for key in keys})
        for item in items
    ]
    return default_collate(padded)
