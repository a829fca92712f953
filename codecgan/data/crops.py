"""Fixed-length windows of any dataset's items (or the items whole), reproducible per (seed, epoch, index)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.data import Dataset

from codecgan.data.excerpt_recipe import ExcerptRecipe
from codecgan.data.item_audio import SHORT_ITEM_FILLS, audio_keys, fill_to_length
from codecgan.data.synthetic_speech import derive_seed

CROP_MODES = ("random", "start", "center", "full")


class CroppedDataset(Dataset):
    """One window of ``crop_samples`` of every item of ``base`` per epoch, or with ``mode="full"``
    every item whole.

    Audio tensors are the item's ``[1, T]`` tensors (``audio``; ``noisy`` and ``clean``); all of an
    item's audio tensors get the SAME window, so paired signals stay aligned. The window never starts
    inside right padding of the base item (its ``length``). An item shorter than the window is filled
    on the right (``codecgan.data.item_audio.fill_to_length``): ``short_items="zero_pad"`` keeps
    ``length = min(true length, crop_samples)``, ``"tile"`` repeats the item (CMGAN) and sets
    ``length = crop_samples``.

    ``__getitem__`` takes ``index`` or ``(index, epoch)`` (a plain index means epoch 0).
    ``"random"`` windows are a pure function of ``(seed, epoch, index)``: the same in every
    worker and process, whatever order items are asked for in. ``"start"`` takes the first
    ``crop_samples`` and ``"center"`` the middle ones, identical in every epoch (for
    validation). ``"full"`` items keep their own lengths: batch them with ``collate_padded``.

    A base with ``item_length(index)`` and ``read_window(index, start, frames)`` (the folder
    datasets) is read one window at a time; any other base is read whole and cut. ``recipe``
    (loudness, salient excerpts, phase shift; ``ExcerptRecipe``) is applied to each window, before
    the fill, and needs ``base.sample_rate``.
    """

    def __init__(
        self,
        base: Dataset,
        crop_samples: int,
        mode: str = "random",
        seed: int = 0,
        short_items: str = "zero_pad",
        recipe: ExcerptRecipe | None = None,
    ) -> None:
        if mode not in CROP_MODES:
            raise ValueError(f"Crop mode {mode!r} is not one of {CROP_MODES}.")
        if crop_samples <= 0:
            raise ValueError(f"crop_samples must be a positive sample count, got {crop_samples}.")
        if seed < 0:
            raise ValueError(f"seed must be non-negative, got {seed}.")
        if short_items not in SHORT_ITEM_FILLS:
            raise ValueError(f"short_items {short_items!r} is not one of {SHORT_ITEM_FILLS}.")
        self.base = base
        self.crop_samples = crop_samples
        self.mode = mode
        self.seed = seed
        self.short_items = short_items
        self.recipe = recipe or ExcerptRecipe()

    def __len__(self) -> int:
        return len(self.base)

    def crop_start(self, true_length: int, index: int, epoch: int = 0) -> int:
        """First sample of the window for an item of ``true_length`` samples (the first draw)."""
        return self._draw_start(true_length, torch.Generator().manual_seed(derive_seed(self.seed, epoch, index)))

    def _draw_start(self, true_length: int, generator: torch.Generator) -> int:
        slack = true_length - self.crop_samples
        if slack <= 0 or self.mode == "start":
            return 0
        if self.mode == "center":
            return slack // 2
        return int(torch.randint(0, slack + 1, (1,), generator=generator))

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        generator = torch.Generator().manual_seed(derive_seed(self.seed, epoch, index))
        sample_rate = getattr(self.base, "sample_rate", 0)
        if self.mode == "full":
            item = dict(self.base[index])
            audio_keys(item)
            return self.recipe.finish(item, sample_rate, generator)
        true_length, window = self._window_reader(index)
        excerpt, loudness = self.recipe.choose(lambda: window(self._draw_start(true_length, generator)), sample_rate)
        excerpt = self.recipe.finish(excerpt, sample_rate, generator, loudness)
        return fill_to_length(excerpt, self.crop_samples, self.short_items)

    def _window_reader(self, index: int) -> tuple[int, Callable[[int], dict]]:
        """Item ``index``'s true length, and a function from a start sample to its window."""
        if hasattr(self.base, "read_window"):
            return self.base.item_length(index), lambda start: self.base.read_window(index, start, self.crop_samples)
        item = dict(self.base[index])
        keys = audio_keys(item)
        true_length = int(item.get("length", item[keys[0]].shape[-1]))

        def cut(start: int) -> dict:
            window = dict(item, length=max(0, min(true_length - start, self.crop_samples)))
            for name in keys:
                window[name] = item[name][:, start : start + window["length"]]
            return window

        return true_length, cut
