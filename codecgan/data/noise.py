"""Synthetic noises, mixing at a given SNR, and the paired noisy/clean synthetic dataset.

Every noise here is ``[T]`` float32 with an RMS of ``NOISE_RMS`` (0.1, about -20 dBFS); its level
in a mixture is set by :func:`mix_at_snr`, never by the generator.
"""

import numpy as np
import torch
from torch.utils.data import Dataset

from codecgan.data.synthetic_speech import derive_seed, synthesize_speech

NOISE_KINDS = ("white", "pink", "babble")
NOISE_RMS = 0.1


def _at_noise_rms(noise: np.ndarray) -> torch.Tensor:
    """``noise`` ([T], float64) scaled to an RMS of ``NOISE_RMS``, as float32."""
    rms = np.sqrt(np.mean(noise**2)) if noise.size else 0.0
    scaled = noise * (NOISE_RMS / rms) if rms > 0 else noise
    return torch.from_numpy(scaled.astype(np.float32))


def white_noise(num_samples: int, seed: int) -> torch.Tensor:
    """Gaussian white noise, ``[num_samples]`` float32, RMS 0.1."""
    return _at_noise_rms(np.random.default_rng(seed).standard_normal(num_samples))


def pink_noise(num_samples: int, seed: int) -> torch.Tensor:
    """Pink (1/f power) noise, ``[num_samples]`` float32, RMS 0.1.

    White noise shaped in the frequency domain by 1/sqrt(f), so power falls 3 dB per octave;
    the DC bin is zeroed so the noise has no offset.
    """
    white = np.random.default_rng(seed).standard_normal(num_samples)
    spectrum = np.fft.rfft(white)
    frequencies = np.fft.rfftfreq(num_samples)
    spectrum[1:] /= np.sqrt(frequencies[1:])
    spectrum[0] = 0.0
    return _at_noise_rms(np.fft.irfft(spectrum, num_samples))


def babble_noise(num_samples: int, sample_rate: int, seed: int, talkers: int = 4) -> torch.Tensor:
    """Babble: ``talkers`` synthetic voices summed, ``[num_samples]`` float32, RMS 0.1.

    Each voice is circularly shifted by a random amount so their pauses do not line up and the
    babble has no common silent start.
    """
    if talkers < 1:
        raise ValueError(f"talkers must be at least 1, got {talkers}.")
    rng = np.random.default_rng(seed)
    babble = np.zeros(num_samples)
    for talker in range(talkers):
        voice = synthesize_speech(num_samples, sample_rate, derive_seed(seed, talker)).double()
        babble += np.roll(voice.numpy(), rng.integers(0, max(num_samples, 1)))
    return _at_noise_rms(babble)


def make_noise(kind: str, num_samples: int, sample_rate: int, seed: int) -> torch.Tensor:
    """Noise of ``kind`` (one of ``NOISE_KINDS``), ``[num_samples]`` float32, RMS 0.1."""
    if kind == "white":
        return white_noise(num_samples, seed)
    if kind == "pink":
        return pink_noise(num_samples, seed)
    if kind == "babble":
        return babble_noise(num_samples, sample_rate, seed)
    raise ValueError(f"Unknown noise kind {kind!r}; expected one of {NOISE_KINDS}.")


def noise_gain_for_snr(clean: torch.Tensor, noise: torch.Tensor, snr_db: float) -> float:
    """The factor ``g`` with ``10 * log10(P(clean) / P(g * noise)) == snr_db``.

    Powers are mean squares over all samples, computed in float64. Raises ``ValueError`` when
    the shapes differ or either signal is silent (the SNR would be undefined).
    """
    if clean.shape != noise.shape:
        raise ValueError(f"clean {tuple(clean.shape)} and noise {tuple(noise.shape)} differ.")
    clean_power = clean.double().pow(2).mean().item()
    noise_power = noise.double().pow(2).mean().item()
    if clean_power == 0.0 or noise_power == 0.0:
        raise ValueError(
            f"Cannot mix at an SNR: clean power is {clean_power:.3g} and noise power is "
            f"{noise_power:.3g}; both must be positive."
        )
    return float(np.sqrt(clean_power / (noise_power * 10.0 ** (snr_db / 10.0))))


def mix_at_snr(clean: torch.Tensor, noise: torch.Tensor, snr_db: float) -> torch.Tensor:
    """``clean + g * noise`` with ``g`` chosen so the mixture's SNR is ``snr_db`` dB.

    ``clean`` and ``noise`` share any shape (e.g. ``[T]`` or ``[1, T]``); the result has the
    shape and dtype of ``clean``.
    """
    gain = noise_gain_for_snr(clean, noise, snr_db)
    return (clean.double() + gain * noise.double()).to(clean.dtype)


class SyntheticNoisySpeech(Dataset):
    """Paired synthetic speech in noise: ``{"noisy": [1, T], "clean": [1, T], "length": T,
    "index": i}``, ``T = round(duration_seconds * sample_rate)``.

    Item ``i``'s SNR (uniform in ``snr_db_range``, dB), noise kind (uniform over
    ``noise_kinds``), speech and noise all derive from ``(seed, i)``, so items are identical in
    every epoch, worker and process. When the noisy peak would exceed 1, noisy and clean are
    scaled by the same factor, which keeps the SNR.

    ``silent_item_fraction`` of the items (a fixed subset drawn from ``seed``; ask
    :meth:`is_silent`) have an all-zero clean signal, so PESQ against them raises
    ``NoUtterancesError``: test data for the "PESQ could not be computed" path. Their noisy
    signal is noise alone, at the level the utterance would have had at the drawn SNR. Digital
    silence rather than a short burst of speech: we measured that a 2-10 ms burst in a silent
    2 s clip still gets a valid PESQ score, while silence fails every time.
    """

    def __init__(
        self,
        num_items: int,
        duration_seconds: float,
        sample_rate: int,
        seed: int = 0,
        snr_db_range: tuple[float, float] = (0.0, 15.0),
        noise_kinds: tuple[str, ...] = NOISE_KINDS,
        silent_item_fraction: float = 0.0,
    ) -> None:
        if num_items < 0:
            raise ValueError(f"num_items must be non-negative, got {num_items}.")
        if duration_seconds <= 0:
            raise ValueError(f"duration_seconds must be positive, got {duration_seconds}.")
        low, high = snr_db_range
        if low > high:
            raise ValueError(f"snr_db_range must be (low, high), low <= high; got {snr_db_range}.")
        unknown = [kind for kind in noise_kinds if kind not in NOISE_KINDS]
        if not noise_kinds or unknown:
            raise ValueError(f"noise_kinds must be a non-empty subset of {NOISE_KINDS}, got {noise_kinds}.")
        if not 0.0 <= silent_item_fraction <= 1.0:
            raise ValueError(f"silent_item_fraction must be in [0, 1], got {silent_item_fraction}.")
        self.num_items = num_items
        self.num_samples = round(duration_seconds * sample_rate)
        self.sample_rate = sample_rate
        self.seed = seed
        self.snr_db_range = (float(low), float(high))
        self.noise_kinds = tuple(noise_kinds)
        self.silent_item_fraction = silent_item_fraction
        num_silent = round(silent_item_fraction * num_items)
        order = np.random.default_rng(derive_seed(seed)).permutation(num_items)
        self._silent_indices = frozenset(int(index) for index in order[:num_silent])

    def __len__(self) -> int:
        return self.num_items

    def is_silent(self, index: int) -> bool:
        """Whether item ``index`` has a (near-)silent clean signal."""
        return index in self._silent_indices

    def mixture_parameters(self, index: int) -> tuple[float, str]:
        """Item ``index``'s ``(snr_db, noise_kind)``."""
        snr_db, kind, _, _ = self._draw(index)
        return snr_db, kind

    def _draw(self, index: int) -> tuple[float, str, int, int]:
        """Per-item random choices: SNR (dB), noise kind, speech seed, noise seed."""
        if not 0 <= index < self.num_items:
            raise IndexError(f"Index {index} is out of range for {self.num_items} items.")
        rng = np.random.default_rng(derive_seed(self.seed, index))
        snr_db = float(rng.uniform(*self.snr_db_range))
        kind = self.noise_kinds[int(rng.integers(0, len(self.noise_kinds)))]
        speech_seed, noise_seed = (int(value) for value in rng.integers(0, 2**62, size=2))
        return snr_db, kind, speech_seed, noise_seed

    def __getitem__(self, index: int) -> dict:
        snr_db, kind, speech_seed, noise_seed = self._draw(index)
        speech = synthesize_speech(self.num_samples, self.sample_rate, speech_seed)
        noise = make_noise(kind, self.num_samples, self.sample_rate, noise_seed)
        scaled_noise = noise_gain_for_snr(speech, noise, snr_db) * noise.double()
        clean = torch.zeros_like(speech) if self.is_silent(index) else speech
        noisy = clean.double() + scaled_noise
        peak = noisy.abs().max().item() if noisy.numel() else 0.0
        scale = 0.99 / peak if peak > 0.99 else 1.0
        return {
            "noisy": (noisy * scale).float().unsqueeze(0),
            "clean": (clean.double() * scale).float().unsqueeze(0),
            "length": self.num_samples,
            "index": index,
        }
