"""MetricGAN+'s history: earlier enhancements with their PESQ, replayed to its metric discriminator.

SpeechBrain's recipe writes every scored enhancement to disk (``uid@epoch``) and, each epoch, trains the
discriminator on ``round(history_portion · |history|)`` of them drawn at random, with the scores they had when
they were written, so that it keeps rating the generator's older outputs correctly (MetricGAN+, §2.2). Here the
history is held in memory on the CPU and is capped: a full buffer evicts its oldest items first, so it holds the
most recent enhancements that fit ``max_items`` and ``max_megabytes``. Its ``state_dict`` goes into the
checkpoint, so a resumed run replays what the uninterrupted run would have.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class ReplayItem:
    """One scored enhancement: ``enhanced`` and ``clean`` waveforms ``[T]`` (float32, CPU, true length) and
    ``score``, its wide-band PESQ against ``clean`` (MOS-LQO)."""

    enhanced: Tensor
    clean: Tensor
    score: float

    @property
    def nbytes(self) -> int:
        return self.enhanced.nbytes + self.clean.nbytes


class ReplayBuffer:
    """The most recent scored enhancements, at most ``max_items`` of them and ``max_megabytes`` of audio.

    Args:
        max_items: items kept at most; the oldest is evicted first.
        max_megabytes: audio kept at most (both waveforms of every item, 4 bytes a sample, 1 MB = 2**20 bytes);
            an item larger than the whole cap is not kept.
    """

    def __init__(self, max_items: int, max_megabytes: float) -> None:
        if max_items < 0:
            raise ValueError(f"max_items must be >= 0, got {max_items}.")
        if not max_megabytes >= 0:
            raise ValueError(f"max_megabytes must be >= 0, got {max_megabytes}.")
        self.max_items = max_items
        self.max_bytes = int(max_megabytes * 2**20)
        self._items: deque[ReplayItem] = deque()
        self.nbytes = 0

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, position: int) -> ReplayItem:
        return self._items[position]

    def add(self, enhanced: Tensor, clean: Tensor, score: float) -> None:
        """Keep ``enhanced`` and ``clean`` (``[T]``, copied to the CPU as float32) with their ``score``, evicting the
        oldest items while the buffer is over its cap."""
        item = ReplayItem(enhanced.detach().float().cpu().clone(), clean.detach().float().cpu().clone(), float(score))
        if item.nbytes > self.max_bytes or self.max_items == 0:
            return
        self._items.append(item)
        self.nbytes += item.nbytes
        while len(self._items) > self.max_items or self.nbytes > self.max_bytes:
            self.nbytes -= self._items.popleft().nbytes

    def sample(self, count: int, generator: torch.Generator) -> list[ReplayItem]:
        """``count`` distinct items (all of them when ``count`` exceeds the size) drawn with ``generator``: the draw
        depends only on the generator's seed and the buffer's contents."""
        order = torch.randperm(len(self._items), generator=generator)[:count].tolist()
        return [self._items[position] for position in order]

    def state_dict(self) -> dict[str, list[Tensor] | Tensor]:
        return {
            "enhanced": [item.enhanced for item in self._items],
            "clean": [item.clean for item in self._items],
            "scores": torch.tensor([item.score for item in self._items], dtype=torch.float64),
        }

    def load_state_dict(self, state: dict[str, list[Tensor] | Tensor]) -> None:
        """Restore the items of ``state_dict()``; this buffer's own caps apply (the oldest go first)."""
        self._items.clear()
        self.nbytes = 0
        for enhanced, clean, score in zip(state["enhanced"], state["clean"], state["scores"].tolist()):
            self.add(enhanced, clean, score)
