"""Noisy speech mixed on the fly from clean speech, noise and room impulse responses (DNS-challenge style).

Users rarely hold a prepared noisy/clean corpus; they hold a clean speech folder and noise (and room impulse
response) folders (facebookresearch/denoiser#17, #71). ``MixedSpeech`` turns each clean item of a speech dataset
(training excerpts, or fixed validation/test crops) into a ``noisy``/``clean`` pair:

1. with probability ``reverb_probability`` the speech is convolved with a room impulse response cut at its direct
   path and scaled to a direct path of 1, so the dry speech stays time-aligned with the reverberant one; the
   target (``clean``) is the **dry** speech, so the model learns to remove reverberation as well as noise;
2. a noise excerpt as long as the item is read from a noise file chosen in proportion to its duration (only that
   window is read, as the training excerpts are; a file shorter than the item is repeated) and scaled so that the
   speech in the mixture (reverberant or dry) over noise is the drawn SNR (mean squares over the item's true
   ``length``);
3. mixture and target get one gain that sets the mixture's RMS to the drawn level in dBFS (RMS re full scale 1.0),
   lowered where the mixture's peak would exceed ``PEAK_LIMIT``, so no sample clips.

Every draw (noise file and start, SNR, level, reverberation and which response) comes from a ``torch.Generator``
seeded with ``(seed, epoch, index)``: a training mixture is the same in every worker, rank and resumed run.
Validation and test mixtures (``fixed=True``) use epoch 0 whatever the epoch, so their scores compare across epochs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torchaudio.functional as audio_functional
from torch.utils.data import Dataset

from codecgan.data.audio_folder import AudioFolder
from codecgan.data.synthetic_speech import derive_seed

# The mixture's peak after the level gain, at most (full scale is 1.0).
PEAK_LIMIT = 0.99
# Seed part that keeps the mixing draws apart from the speech crop's draws, which use (seed, epoch, index).
MIXING_STREAM = 1


def _check_range(name: str, value, lowest: float, highest: float) -> tuple[float, float]:
    """``value`` as ``(low, high)`` with ``lowest <= low <= high <= highest``, or ``ValueError`` naming ``name``."""
    try:
        low, high = (float(bound) for bound in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair [low, high], got {value!r}.") from None
    if not (lowest <= low <= high <= highest) or math.isnan(low) or math.isnan(high):
        raise ValueError(f"{name} must be [low, high] with {lowest} <= low <= high <= {highest}, got {[low, high]}.")
    return low, high


@dataclass(frozen=True)
class MixingRecipe:
    """How mixtures are drawn.

    Attributes:
        snr_db_range: speech-to-noise ratio in dB, drawn uniformly (DNS challenge: about [-5, 20]).
        level_db_range: the mixture's RMS level in dBFS, drawn uniformly (DNS challenge: [-35, -15]).
        reverb_probability: the fraction of items whose speech is reverberated with a room impulse response.
    """

    snr_db_range: tuple[float, float] = (-5.0, 20.0)
    level_db_range: tuple[float, float] = (-35.0, -15.0)
    reverb_probability: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "snr_db_range", _check_range("snr_db_range", self.snr_db_range, -100.0, 100.0))
        object.__setattr__(self, "level_db_range", _check_range("level_db_range", self.level_db_range, -100.0, 0.0))
        if not 0.0 <= self.reverb_probability <= 1.0:
            raise ValueError(f"reverb_probability must be in [0, 1], got {self.reverb_probability}.")


@dataclass(frozen=True)
class MixtureDraw:
    """One item's random choices: the noise (item of the noise pool, first sample), the SNR (dB), the level (dBFS),
    and the room impulse response (its item, or ``None`` for dry speech)."""

    noise_item: int
    noise_start: int
    snr_db: float
    level_db: float
    rir_item: int | None


class NoisePool:
    """The files of several noise folders as one pool, each file chosen in proportion to its duration."""

    def __init__(self, folders: list[AudioFolder]) -> None:
        if not folders:
            raise ValueError("A noise pool needs at least one noise folder.")
        self.folders = folders
        self.items = [(folder, item) for folder in folders for item in range(len(folder))]
        self.item_ends = np.cumsum([folder.item_length(item) for folder, item in self.items])
        self.total_samples = int(self.item_ends[-1])

    def draw(self, frames: int, generator: torch.Generator) -> tuple[int, int]:
        """(pool item, first sample) of a ``frames``-long excerpt: a sample drawn uniformly over all the noise picks
        the file, a start drawn uniformly within it places the window (0 for a file shorter than ``frames``)."""
        position = int(torch.randint(0, self.total_samples, (1,), generator=generator))
        item = int(np.searchsorted(self.item_ends, position, side="right"))
        folder, index = self.items[item]
        slack = max(0, folder.item_length(index) - frames)
        return item, int(torch.randint(0, slack + 1, (1,), generator=generator))

    def read(self, item: int, start: int, frames: int) -> torch.Tensor:
        """``[1, frames]`` noise from ``start`` of pool item ``item``, repeated where the file is shorter."""
        folder, index = self.items[item]
        audio = folder.read_window(index, start, frames)["audio"]
        if 0 < audio.shape[-1] < frames:
            audio = audio.repeat(1, -(-frames // audio.shape[-1]))
        return audio[:, :frames]


def dry_aligned_response(rir: torch.Tensor) -> torch.Tensor:
    """``rir`` (``[1, R]``) from its direct path (largest magnitude) on, scaled so the direct path is 1: convolved
    speech then holds the dry speech at its own time and level, plus the reflections."""
    peak = int(rir.abs().argmax())
    value = float(rir[0, peak])
    return rir[:, peak:] / value if value != 0.0 else rir[:, peak:]


def fast_fft_length(length: int) -> int:
    """The smallest number ``>= length`` with no prime factor above 5: an FFT of that length is fast (one of 23,999
    = 103 x 233 samples, a 1 s item with a 0.5 s response at 16 kHz, takes 7 ms; one of 24,000 takes 1 ms)."""
    best = 1 << max(0, (length - 1).bit_length())
    power_of_five = 1
    while power_of_five < best:
        power_of_three = power_of_five
        while power_of_three < best:
            candidate = power_of_three << max(0, (-(-length // power_of_three) - 1).bit_length())
            best = min(best, candidate)
            power_of_three *= 3
        power_of_five *= 5
    return best


def reverberate(speech: torch.Tensor, rir: torch.Tensor) -> torch.Tensor:
    """``speech`` ``[1, T]`` convolved with ``dry_aligned_response(rir)``, its first ``T`` samples (float32)."""
    response = dry_aligned_response(rir).float()
    full_length = speech.shape[-1] + response.shape[-1] - 1
    # Zeros after the response change no output sample and make the FFT length a fast one.
    response = torch.nn.functional.pad(response, (0, fast_fft_length(full_length) - full_length))
    return audio_functional.fftconvolve(speech.float(), response)[:, : speech.shape[-1]]


def mix(
    clean: torch.Tensor, noise: torch.Tensor, snr_db: float, level_db: float, rir: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(noisy, target), both ``[1, T]`` float32, from ``clean`` and ``noise`` ``[1, T]`` (the item's true samples).

    The speech in the mixture is ``clean`` convolved with ``rir`` (``dry_aligned_response``) when given; the target
    is ``clean``. Noise is scaled to ``snr_db`` below that speech; mixture and target then share one gain that sets
    the mixture's RMS to ``level_db`` dBFS, lowered where the peak would exceed ``PEAK_LIMIT``. Silent speech gives
    noise alone at the level (PESQ then fails on the item and is counted); silent noise gives the speech alone.
    """
    target = clean.double()
    speech = target
    if rir is not None:
        speech = reverberate(clean, rir).double()
    speech_power = float(speech.pow(2).mean())
    noise = noise.double()
    noise_power = float(noise.pow(2).mean())
    if noise_power == 0.0:
        noise_gain = 0.0
    elif speech_power == 0.0:
        noise_gain = 1.0
    else:
        noise_gain = math.sqrt(speech_power / (noise_power * 10.0 ** (snr_db / 10.0)))
    noisy = speech + noise_gain * noise
    rms = float(noisy.pow(2).mean().sqrt())
    gain = 10.0 ** (level_db / 20.0) / rms if rms > 0.0 else 1.0
    peak = float(noisy.abs().max()) if noisy.numel() else 0.0
    if peak * gain > PEAK_LIMIT:
        gain = PEAK_LIMIT / peak
    return (noisy * gain).float(), (target * gain).float()


class MixedSpeech(Dataset):
    """``{"noisy": [1, T], "clean": [1, T], "length", "index"}`` from a speech dataset's ``{"audio", "length",
    "index"}`` items, mixed with noise (and reverberation) as ``recipe`` says.

    Keys are ``index`` or ``(index, epoch)``, passed on to ``speech`` (``ExcerptDataset`` or ``CroppedDataset``).
    Item ``(index, epoch)`` is a pure function of ``(seed, epoch, index)``, or of ``(seed, index)`` when ``fixed``
    (validation and test). Samples past the speech's true ``length`` (zero padding) stay zero in both signals.

    Args:
        speech: clean items; their sample rate is the noise's and the responses'.
        noise: the noise files.
        rirs: room impulse responses (each file one response), needed when ``recipe.reverb_probability > 0``.
        recipe: SNR range, level range and reverberation probability.
        seed: seeds the draws (use another seed per split).
        fixed: draw every epoch's mixture as epoch 0's.
    """

    def __init__(
        self,
        speech: Dataset,
        noise: NoisePool,
        recipe: MixingRecipe,
        rirs: AudioFolder | None = None,
        seed: int = 0,
        fixed: bool = False,
    ) -> None:
        if recipe.reverb_probability > 0 and rirs is None:
            raise ValueError("reverb_probability > 0 needs room impulse responses (rirs).")
        if seed < 0:
            raise ValueError(f"seed must be non-negative, got {seed}.")
        self.speech = speech
        self.noise = noise
        self.recipe = recipe
        self.rirs = rirs
        self.seed = seed
        self.fixed = fixed

    def __len__(self) -> int:
        return len(self.speech)

    @property
    def independent_draws(self) -> bool:
        """Whether items are independent random draws already (training excerpts): a sampler need not shuffle."""
        return getattr(self.speech, "independent_draws", False)

    def draw(self, index: int, epoch: int, frames: int) -> MixtureDraw:
        """Item ``(index, epoch)``'s choices for speech of ``frames`` true samples (nothing is read)."""
        generator = torch.Generator().manual_seed(
            derive_seed(self.seed, 0 if self.fixed else epoch, index, MIXING_STREAM)
        )
        noise_item, noise_start = self.noise.draw(frames, generator)
        low, high = self.recipe.snr_db_range
        snr_db = low + (high - low) * float(torch.rand((), generator=generator, dtype=torch.float64))
        low, high = self.recipe.level_db_range
        level_db = low + (high - low) * float(torch.rand((), generator=generator, dtype=torch.float64))
        rir_item = None
        if self.rirs is not None and float(torch.rand((), generator=generator)) < self.recipe.reverb_probability:
            rir_item = int(torch.randint(0, len(self.rirs), (1,), generator=generator))
        return MixtureDraw(noise_item, noise_start, snr_db, level_db, rir_item)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        item = self.speech[(index, epoch)]
        audio, length = item["audio"], int(item["length"])
        choice = self.draw(index, epoch, length)
        noise = self.noise.read(choice.noise_item, choice.noise_start, length)
        rir = None if choice.rir_item is None else self.rirs[choice.rir_item]["audio"]
        noisy, clean = mix(audio[:, :length], noise, choice.snr_db, choice.level_db, rir)
        padding = audio.shape[-1] - length
        return {
            "noisy": torch.nn.functional.pad(noisy, (0, padding)),
            "clean": torch.nn.functional.pad(clean, (0, padding)),
            "length": item["length"],
            "index": item["index"],
        }
