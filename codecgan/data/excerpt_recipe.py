"""DAC's data recipe for excerpts: salient excerpts, loudness normalisation, phase-shift augmentation.

DAC (descript-audio-codec ``conf/base.yml`` with audiotools) draws each 0.38 s training excerpt with
``AudioSignal.salient_excerpt(loudness_cutoff=-40, num_tries=8)`` and passes it through
``VolumeNorm(-16 dB) -> RescaleAudio -> ShiftPhase(uniform -pi..pi)``. ``ExcerptRecipe`` is that
recipe as options; every random draw comes from the generator the dataset seeds with
``(seed, epoch, index)``, so an excerpt, its redraws and its phase are the same in every worker,
process and resumed run.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from codecgan.data.item_audio import audio_keys
from codecgan.data.loudness import integrated_loudness_db, loudness_gain
from codecgan.data.phase_shift import shift_phase


def loudness_reference(item: dict) -> torch.Tensor:
    """The signal whose loudness an item is judged by: clean speech for pairs, else the audio; its
    true ``length`` samples only."""
    return item["clean" if "clean" in item else "audio"][:, : int(item["length"])]


@dataclass(frozen=True)
class ExcerptRecipe:
    """What is done to each excerpt once it is cut; every option off by default.

    Attributes:
        loudness_db: normalise each excerpt's integrated loudness (ITU-R BS.1770) to this many dB LUFS
            (DAC: -16), then scale it down if a peak exceeds 1 (DAC's ``RescaleAudio``). Pairs get one
            gain, measured on the clean signal, so their SNR is kept. ``None``: off.
        salient_cutoff_db: redraw an excerpt whose loudness is below this many dB LUFS (DAC's
            ``loudness_cutoff``: -40), from the same item, up to ``salient_tries`` draws in all; when
            none reaches it, the loudest drawn is kept (DAC keeps the last). ``None``: off.
        salient_tries: draws per excerpt at most (DAC's ``num_tries``: 8).
        phase_shift: rotate the phase of every frequency component of the excerpt by one angle drawn
            uniformly from [-pi, pi) (DAC's ``ShiftPhase``; ``codecgan.data.phase_shift``).
    """

    loudness_db: float | None = None
    salient_cutoff_db: float | None = None
    salient_tries: int = 8
    phase_shift: bool = False

    def __post_init__(self) -> None:
        if self.salient_tries < 1:
            raise ValueError(f"salient_tries must be at least 1, got {self.salient_tries}.")
        for name in ("loudness_db", "salient_cutoff_db"):
            value = getattr(self, name)
            if value is not None and not -70.0 <= value <= 0.0:
                raise ValueError(f"{name} must be a loudness between -70 and 0 dB LUFS (or null), got {value}.")

    def choose(self, draw: Callable[[], dict], sample_rate: int) -> tuple[dict, float | None]:
        """An excerpt from ``draw()`` (which draws a new window each call) and its loudness in dB LUFS
        (``None`` when not measured): the first at least ``salient_cutoff_db`` loud, else the loudest of
        ``salient_tries``."""
        excerpt = draw()
        if self.salient_cutoff_db is None:
            return excerpt, None
        loudness = integrated_loudness_db(loudness_reference(excerpt), sample_rate)
        for _ in range(self.salient_tries - 1):
            if loudness >= self.salient_cutoff_db:
                break
            candidate = draw()
            candidate_loudness = integrated_loudness_db(loudness_reference(candidate), sample_rate)
            if candidate_loudness > loudness:
                excerpt, loudness = candidate, candidate_loudness
        return excerpt, loudness

    def finish(
        self, item: dict, sample_rate: int, generator: torch.Generator, loudness_db: float | None = None
    ) -> dict:
        """``item`` normalised in loudness and shifted in phase as the options say (``loudness_db``: the
        excerpt's loudness when ``choose`` measured it)."""
        if self.loudness_db is None and not self.phase_shift:
            return item
        finished = dict(item)
        keys = audio_keys(item)
        if self.loudness_db is not None:
            if loudness_db is None:
                loudness_db = integrated_loudness_db(loudness_reference(item), sample_rate)
            gain = loudness_gain(loudness_db, self.loudness_db)
            for key in keys:
                finished[key] = finished[key] * gain
        if self.phase_shift:
            radians = (2.0 * float(torch.rand((), generator=generator)) - 1.0) * math.pi
            for key in keys:
                finished[key] = shift_phase(finished[key], radians)
        peak = max(float(finished[key].abs().max()) for key in keys)
        if peak > 1.0:
            for key in keys:
                finished[key] = finished[key] / peak
        return finished
