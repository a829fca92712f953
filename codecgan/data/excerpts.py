"""Training epochs of excerpts drawn from a folder's files in proportion to their duration."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from codecgan.data.excerpt_recipe import ExcerptRecipe
from codecgan.data.item_audio import SHORT_ITEM_FILLS, fill_to_length
from codecgan.data.synthetic_speech import derive_seed


class ExcerptDataset(Dataset):
    """An epoch of ``crop_samples``-long training excerpts of a folder dataset's items.

    An epoch holds ``ceil(total samples / crop_samples)`` excerpts (at least ``min_excerpts``, which
    the datamodule sets to one batch per rank), so it covers about as much audio as the data holds
    whether that is a hundred thousand utterances or four long recordings. Excerpt ``index`` of epoch
    ``epoch`` is a pure function of ``(seed, epoch, index)``: a sample position drawn uniformly over all
    the data picks its item (so items are chosen in proportion to their duration), a start drawn
    uniformly within the item places the window, and only that window is read
    (``base.read_window``). ``recipe`` redraws quiet excerpts, normalises loudness and shifts phase
    (``ExcerptRecipe``); an item shorter than the crop is filled as ``short_items`` says
    (``fill_to_length``). Items are ``base``'s keys with ``index`` the excerpt's number.

    ``base`` must provide ``item_length(index)``, ``read_window(index, start, frames)`` and
    ``sample_rate`` (``AudioFolder``, ``PairedAudioFolder``). Excerpts are independent draws, so a
    sampler need not shuffle them.
    """

    independent_draws = True

    def __init__(
        self,
        base: Dataset,
        crop_samples: int,
        seed: int = 0,
        min_excerpts: int = 1,
        short_items: str = "zero_pad",
        recipe: ExcerptRecipe | None = None,
    ) -> None:
        if crop_samples <= 0:
            raise ValueError(f"crop_samples must be a positive sample count, got {crop_samples}.")
        if seed < 0:
            raise ValueError(f"seed must be non-negative, got {seed}.")
        if short_items not in SHORT_ITEM_FILLS:
            raise ValueError(f"short_items {short_items!r} is not one of {SHORT_ITEM_FILLS}.")
        if len(base) == 0:
            raise ValueError("The dataset to draw excerpts from is empty.")
        self.base = base
        self.crop_samples = crop_samples
        self.seed = seed
        self.short_items = short_items
        self.recipe = recipe or ExcerptRecipe()
        self.lengths = np.array([base.item_length(index) for index in range(len(base))], dtype=np.int64)
        self.item_ends = np.cumsum(self.lengths)
        self.total_samples = int(self.item_ends[-1])
        self.num_excerpts = max(-(-self.total_samples // crop_samples), min_excerpts)

    def __len__(self) -> int:
        return self.num_excerpts

    def source_item(self, index: int, epoch: int = 0) -> int:
        """The base item excerpt ``index`` of ``epoch`` is drawn from (before any read)."""
        return self._draw_item(self._generator(index, epoch))

    def _generator(self, index: int, epoch: int) -> torch.Generator:
        if not 0 <= index < self.num_excerpts:
            raise IndexError(f"Excerpt {index} is out of range for {self.num_excerpts} excerpts per epoch.")
        return torch.Generator().manual_seed(derive_seed(self.seed, epoch, index))

    def _draw_item(self, generator: torch.Generator) -> int:
        position = int(torch.randint(0, self.total_samples, (1,), generator=generator))
        return int(np.searchsorted(self.item_ends, position, side="right"))

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        generator = self._generator(index, epoch)
        item_index = self._draw_item(generator)
        slack = max(0, int(self.lengths[item_index]) - self.crop_samples)

        def draw() -> dict:
            start = int(torch.randint(0, slack + 1, (1,), generator=generator))
            return self.base.read_window(item_index, start, self.crop_samples)

        sample_rate = self.base.sample_rate
        excerpt, loudness = self.recipe.choose(draw, sample_rate)
        excerpt = self.recipe.finish(excerpt, sample_rate, generator, loudness)
        return dict(fill_to_length(excerpt, self.crop_samples, self.short_items), index=index)
