"""The audio tensors of a dataset item: finding them, and filling a short one up to a length.

An item is a dict whose audio tensors are ``[1, T]`` (``audio``; ``noisy`` and ``clean``), all of the
same width, with ``length`` its true number of samples (docs/interfaces.md).
"""

import torch
import torch.nn.functional as functional

SHORT_ITEM_FILLS = ("zero_pad", "tile")


def audio_keys(item: dict) -> list[str]:
    """The keys of ``item``'s ``[1, T]`` audio tensors; raises ``ValueError`` when there are none or
    their widths differ."""
    keys = [
        name
        for name, value in item.items()
        if isinstance(value, torch.Tensor) and value.dim() == 2 and value.shape[0] == 1
    ]
    if not keys:
        raise ValueError(f"Item {item.get('index')} has no [1, T] audio tensor; its keys are {list(item)}.")
    widths = {item[name].shape[-1] for name in keys}
    if len(widths) != 1:
        raise ValueError(f"Item {item.get('index')}'s audio {keys} differ in length: {widths}.")
    return keys


def fill_to_length(item: dict, samples: int, mode: str = "zero_pad") -> dict:
    """``item`` with every audio tensor cut to its true ``length`` and filled on the right to ``samples``.

    ``"zero_pad"`` appends zeros and keeps ``length`` (the padding is not audio, so metrics and
    normalisations can leave it out). ``"tile"`` repeats the item from its start, as CMGAN does with
    utterances shorter than its 2 s crops; ``length`` becomes ``samples``, since every sample is audio.
    Items already ``samples`` long are returned unchanged.
    """
    if mode not in SHORT_ITEM_FILLS:
        raise ValueError(f"Short-item fill {mode!r} is not one of {SHORT_ITEM_FILLS}.")
    true_length = int(item["length"])
    filled = dict(item)
    for key in audio_keys(item):
        audio = item[key][:, :true_length]
        if mode == "tile" and 0 < true_length < samples:
            audio = audio.repeat(1, -(-samples // true_length))[:, :samples]
        filled[key] = functional.pad(audio, (0, samples - audio.shape[-1]))
    filled["length"] = samples if mode == "tile" and true_length > 0 else min(true_length, samples)
    return filled
