"""Fixed-length windows of any dataset's items, reproducible per (seed, epoch, index)."""

import torch
import torch.nn.functional as functional
from torch.utils.data import Dataset

from codecgan.data.synthetic_speech import derive_seed

CROP_MODES = ("random", "start", "center")


class CroppedDataset(Dataset):
    """Crops (or zero-pads on the right) every audio tensor of ``base``'s items to
    ``crop_samples``.

    Audio tensors are the item's ``[1, T]`` tensors (``audio``; ``noisy`` and ``clean``); all of
    an item's audio tensors get the SAME window, so paired signals stay aligned. ``length``
    becomes ``min(true length, crop_samples)``, where the true length is the base item's
    ``length`` (the window never starts inside right padding).

    ``__getitem__`` takes ``index`` or ``(index, epoch)`` (a plain index means epoch 0).
    ``"random"`` windows are a pure function of ``(seed, epoch, index)``: the same in every
    worker and process, whatever order items are asked for in. ``"start"`` takes the first
    ``crop_samples`` and ``"center"`` the middle ones, identical in every epoch (for
    validation).
    """

    def __init__(
        self, base: Dataset, crop_samples: int, mode: str = "random", seed: int = 0
    ) -> None:
        if mode not in CROP_MODES:
            raise ValueError(f"Crop mode {mode!r} is not one of {CROP_MODES}.")
        if crop_samples <= 0:
            raise ValueError(f"crop_samples must be a positive sample count, got {crop_samples}.")
        if seed < 0:
            raise ValueError(f"seed must be non-negative, got {seed}.")
        self.base = base
        self.crop_samples = crop_samples
        self.mode = mode
        self.seed = seed

    def __len__(self) -> int:
        return len(self.base)

    def crop_start(self, true_length: int, index: int, epoch: int = 0) -> int:
        """First sample of the window for an item of ``true_length`` samples."""
        slack = true_length - self.crop_samples
        if slack <= 0 or self.mode == "start":
            return 0
        if self.mode == "center":
            return slack // 2
        generator = torch.Generator().manual_seed(derive_seed(self.seed, epoch, index))
        return int(torch.randint(0, slack + 1, (1,), generator=generator))

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        item = dict(self.base[index])
        audio_keys = [
            name
            for name, value in item.items()
            if isinstance(value, torch.Tensor) and value.dim() == 2 and value.shape[0] == 1
        ]
        if not audio_keys:
            raise ValueError(f"Item {index} has no [1, T] audio tensor; its keys are {list(item)}.")
        widths = {item[name].shape[-1] for name in audio_keys}
        if len(widths) != 1:
            raise ValueError(f"Item {index}'s audio {audio_keys} differ in length: {widths}.")
        true_length = int(item.get("length", widths.pop()))
        start = self.crop_start(true_length, index, epoch)
        for name in audio_keys:
            window = item[name][:, start : start + self.crop_samples]
            item[name] = functional.pad(window, (0, self.crop_samples - window.shape[-1]))
        item["length"] = min(true_length - start, self.crop_samples)
        return item
