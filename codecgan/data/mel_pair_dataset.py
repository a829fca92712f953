"""Training epochs of frame-aligned excerpts of (audio, precomputed mel) pairs: HiFi-GAN-style fine-tuning."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from codecgan.data.mel_pairs import MelPairFolder, read_mel_frames
from codecgan.data.synthetic_speech import derive_seed

FIXED_CROPS = (None, "start", "center")


class MelPairExcerpts(Dataset):
    """An epoch of excerpts of ``pairs``, each ``{"audio": [1, segment_frames * hop], "mel": [n_mels, segment_frames +
    extra_frames], "length", "index"}``, the mel crop starting at the frame that describes the audio crop's first hop.

    ``extra_frames`` is what the generator needs beyond one frame per hop: 1 for a centred front-end and ISTFT head
    (``padding: center``: ``frames + 1`` frames make ``frames * hop`` samples), 0 for ``same``. As
    ``ExcerptDataset``, an epoch holds ``ceil(total samples / crop)`` excerpts (at least ``min_excerpts``), and excerpt
    ``index`` of ``epoch`` is a pure function of ``(seed, epoch, index)``: a sample position drawn uniformly over all
    the audio picks the pair, then a start frame is drawn uniformly among those whose audio and mel crops both fit.
    An unreadable audio file is replaced as ``AudioFolder`` replaces it (the next readable pair, cropped from its
    start, with its own mel). Excerpts are independent draws, so a sampler need not shuffle them.

    With ``fixed`` (``start`` or ``center``: validation), item ``i`` is pair ``i`` cropped at its first frame or its
    middle one, the same in every epoch.
    """

    def __init__(
        self,
        pairs: MelPairFolder,
        segment_frames: int,
        extra_frames: int = 0,
        seed: int = 0,
        min_excerpts: int = 1,
        fixed: str | None = None,
    ) -> None:
        if fixed not in FIXED_CROPS:
            raise ValueError(f"fixed must be one of {FIXED_CROPS}, got {fixed!r}.")
        if segment_frames < 1 or extra_frames < 0 or seed < 0:
            raise ValueError(
                f"segment_frames must be >= 1, extra_frames and seed >= 0; got {segment_frames}, {extra_frames}, {seed}."
            )
        self.pairs = pairs
        self.hop = pairs.hop
        self.sample_rate = pairs.sample_rate
        self.segment_frames, self.extra_frames, self.seed = segment_frames, extra_frames, seed
        self.crop_samples = segment_frames * self.hop
        self.lengths = np.array(pairs.audio.lengths, dtype=np.int64)
        # The last start frame of each pair whose audio crop and mel crop (plus its extra frames) both fit.
        self.last_starts = [
            min((int(samples) - self.crop_samples) // self.hop, frames - segment_frames - extra_frames)
            for samples, frames in zip(self.lengths, pairs.mel_frames)
        ]
        self.item_ends = np.cumsum(self.lengths)
        self.total_samples = int(self.item_ends[-1])
        self.fixed = fixed
        self.independent_draws = fixed is None
        self.num_excerpts = (
            max(-(-self.total_samples // self.crop_samples), min_excerpts) if fixed is None else len(pairs)
        )

    def __len__(self) -> int:
        return self.num_excerpts

    def draw(self, index: int, epoch: int = 0) -> tuple[int, int]:
        """(pair, start frame) of excerpt ``index`` of ``epoch``."""
        if self.fixed is not None:
            if not 0 <= index < len(self.pairs):
                raise IndexError(f"Item {index} is out of range for {len(self.pairs)} pairs.")
            return index, 0 if self.fixed == "start" else self.last_starts[index] // 2
        if not 0 <= index < self.num_excerpts:
            raise IndexError(f"Excerpt {index} is out of range for {self.num_excerpts} excerpts per epoch.")
        generator = torch.Generator().manual_seed(derive_seed(self.seed, epoch, index))
        position = int(torch.randint(0, self.total_samples, (1,), generator=generator))
        pair = int(np.searchsorted(self.item_ends, position, side="right"))
        start = int(torch.randint(0, self.last_starts[pair] + 1, (1,), generator=generator))
        return pair, start

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        pair, start = self.draw(index, epoch)
        audio = self.pairs.audio.read_window(pair, start * self.hop, self.crop_samples)
        if audio["index"] != pair:  # the audio could not be read: crop its substitute from the start
            pair, start = audio["index"], 0
            audio = self.pairs.audio.read_window(pair, 0, self.crop_samples)
        mel = read_mel_frames(self.pairs.mel_files[pair], start, self.segment_frames + self.extra_frames)
        return {"audio": audio["audio"], "mel": mel, "length": audio["length"], "index": index}
