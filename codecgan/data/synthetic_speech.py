"""Deterministic speech-like audio for tests and demos, at any sample rate.

The signal follows a source-filter model: a Rosenberg glottal pulse train with a drifting,
vibrato-modulated pitch goes through a cascade of four formant resonators per vowel target; the
vowel targets change once per syllable and are cross-faded, band-passed noise stands in for
fricatives, a per-syllable hump gives the 3-6 Hz amplitude modulation, and phrases of 0.4-1.5 s
are separated by 100-600 ms of digital silence. The first phrase starts within 0.25 s, so any
clip of 2 s or more holds enough speech for PESQ's utterance detector.
"""

import numpy as np
import torch
import torchaudio.functional as audio_functional
from torch.utils.data import Dataset

# Formant targets (F1-F4, Hz) of five vowels /a i u e o/, after Peterson & Barney's averages.
VOWEL_FORMANTS_HZ = np.array(
    [
        [730.0, 1090.0, 2440.0, 3400.0],
        [270.0, 2290.0, 3010.0, 3700.0],
        [300.0, 870.0, 2240.0, 3300.0],
        [530.0, 1840.0, 2480.0, 3500.0],
        [570.0, 840.0, 2410.0, 3300.0],
    ]
)
FORMANT_BANDWIDTHS_HZ = np.array([80.0, 100.0, 140.0, 200.0])
# Centre frequencies (Hz) of the two fricative noise colours, roughly "sh" and "s".
FRICATIVE_CENTRES_HZ = np.array([3000.0, 5500.0])
FRICATIVE_BANDWIDTHS_HZ = np.array([1500.0, 2500.0])
# Corner (Hz) of a first-order pre-emphasis that lifts the resonator cascade's steep high-frequency
# roll-off towards the long-term average speech spectrum (about -6 dB/octave above 500 Hz).
PRE_EMPHASIS_CORNER_HZ = 500.0
MIN_SAMPLE_RATE = 8000


def derive_seed(*parts: int) -> int:
    """Mix integers (a base seed, an item index, an epoch ...) into one 63-bit seed.

    Uses numpy's SeedSequence rather than Python's ``hash`` so the result is the same in every
    process and on every run. Parts must be non-negative.
    """
    if any(part < 0 for part in parts):
        raise ValueError(f"Seed parts must be non-negative integers, got {parts}.")
    # SeedSequence ignores trailing zeros ([5] and [5, 0] collide); leading with the number of
    # parts keeps (seed,), (seed, 0) and (seed, 0, 0) apart.
    entropy = [len(parts), *(int(part) for part in parts)]
    state = np.random.SeedSequence(entropy).generate_state(2, dtype=np.uint32)
    # 63 bits so the value is accepted by torch.Generator.manual_seed and numpy alike.
    return int((int(state[0]) << 31) ^ int(state[1])) & ((1 << 63) - 1)


def _resonator_coefficients(
    centres_hz: np.ndarray, bandwidths_hz: np.ndarray, sample_rate: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two-pole resonators with unity gain at DC (Klatt's form), one per centre frequency.

    Unity DC gain makes a cascade of resonators produce the natural fall-off of formant peaks
    with frequency, so no per-formant amplitudes need tuning. For centres and bandwidths (Hz)
    shaped ``[...]`` returns ``(a, b)``, each ``[..., 3]`` float64, as ``lfilter`` takes them.
    """
    radius = np.exp(-np.pi * bandwidths_hz / sample_rate)
    angle = 2.0 * np.pi * centres_hz / sample_rate
    a1 = -2.0 * radius * np.cos(angle)
    a2 = radius**2
    a = np.stack([np.ones_like(a1), a1, a2], axis=-1)
    b = np.stack([1.0 + a1 + a2, np.zeros_like(a1), np.zeros_like(a1)], axis=-1)
    return torch.from_numpy(a), torch.from_numpy(b)


def _filter_cascade(signal: np.ndarray, a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """Run ``signal`` ([C, T]) through the resonators in ``a``/``b`` ([C, K, 3]), K in cascade."""
    filtered = torch.from_numpy(signal)
    for stage in range(a.shape[1]):
        # clamp=False: lfilter clips to [-1, 1] by default, which would distort the resonances.
        a_stage, b_stage = a[:, stage].contiguous(), b[:, stage].contiguous()
        filtered = audio_functional.lfilter(filtered, a_stage, b_stage, clamp=False, batching=True)
    return filtered.numpy()


def _glottal_source(f0_hz: np.ndarray, sample_rate: int, start_phase: float) -> np.ndarray:
    """Derivative of a Rosenberg glottal flow pulse train following ``f0_hz`` ([T], Hz) -> [T]."""
    phase = (start_phase + np.cumsum(f0_hz / sample_rate)) % 1.0
    opening, closing = 0.4, 0.08  # fractions of the period, Rosenberg's typical shape
    flow = np.where(
        phase < opening,
        0.5 * (1.0 - np.cos(np.pi * phase / opening)),
        np.where(
            phase < opening + closing,
            np.cos(0.5 * np.pi * (phase - opening) / closing),
            0.0,
        ),
    )
    # The abrupt closure in the derivative carries the high harmonics (and lip radiation).
    return np.diff(flow, prepend=0.0) * sample_rate / f0_hz.mean()


def _pitch_contour(num_samples: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """f0 in Hz ([T]): a base of 100-180 Hz, slow drift, 4-6 Hz vibrato, clipped to 90-220 Hz."""
    # Per-clip draws come before per-sample ones, so the contour is the same at every rate.
    base_hz = rng.uniform(100.0, 180.0)
    vibrato_hz, vibrato_offset = rng.uniform(4.0, 6.0), rng.uniform(0.0, 2.0 * np.pi)
    knot_times = np.arange(0.0, num_samples / sample_rate + 0.5, 0.3)
    knot_drifts = rng.uniform(-0.15, 0.15, knot_times.size)
    seconds = np.arange(num_samples) / sample_rate
    drift = np.interp(seconds, knot_times, knot_drifts)
    vibrato = 0.02 * np.sin(2.0 * np.pi * vibrato_hz * seconds + vibrato_offset)
    jitter = 0.005 * rng.standard_normal(num_samples)
    return np.clip(base_hz * (1.0 + drift + vibrato + jitter), 90.0, 220.0)


def _syllable_plan(num_samples: int, sample_rate: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """Syllables as ``(start, end)`` sample spans, grouped in phrases separated by pauses.

    Phrases last 0.4-1.5 s, pauses 0.1-0.6 s, syllables 1/6-1/3 s; the first phrase starts
    within 0.02-0.25 s, so a 2 s clip always holds at least 0.4 s of speech and a 100 ms pause.
    Clips shorter than 2 s start proportionally earlier, so even short ones hold speech.
    """
    syllables = []
    end_s = num_samples / sample_rate
    time_s = rng.uniform(0.02, 0.25) * min(1.0, end_s / 2.0)
    while time_s < end_s:
        phrase_end_s = time_s + rng.uniform(0.4, 1.5)
        while time_s < min(phrase_end_s, end_s):
            syllable_end_s = min(time_s + 1.0 / rng.uniform(3.0, 6.0), phrase_end_s, end_s)
            syllables.append((round(time_s * sample_rate), round(syllable_end_s * sample_rate)))
            time_s = syllable_end_s
        time_s += rng.uniform(0.1, 0.6)
    return [(start, end) for start, end in syllables if end > start]


def _envelopes(
    num_samples: int, sample_rate: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-sample controls: voiced envelope ``[T]``, fricative envelopes ``[2, T]`` (one per
    noise colour) and vowel weights ``[V, T]`` (summing to 1), all zero in pauses."""
    syllables = _syllable_plan(num_samples, sample_rate, rng)
    voiced = np.zeros(num_samples)
    fricatives = np.zeros((FRICATIVE_CENTRES_HZ.size, num_samples))
    for start, end in syllables:
        voiced_start = start
        if rng.uniform() < 0.3 and end - start > 0.12 * sample_rate:
            # A fricative onset: a noise burst of 40-100 ms overlapping the vowel's rise.
            fricative_end = start + round(rng.uniform(0.04, 0.1) * sample_rate)
            colour = rng.integers(0, FRICATIVE_CENTRES_HZ.size)
            fricatives[colour, start:fricative_end] = np.hanning(fricative_end - start)
            voiced_start = (start + fricative_end) // 2
        # A hump that falls to 0 at both ends gives the syllable-rate (3-6 Hz) modulation.
        hump_position = np.linspace(0.0, 1.0, end - voiced_start)
        voiced[voiced_start:end] = np.sin(np.pi * hump_position) ** 0.7

    # One vowel target per syllable, linearly cross-faded between syllable centres.
    num_vowels = VOWEL_FORMANTS_HZ.shape[0]
    targets = np.eye(num_vowels)[rng.integers(0, num_vowels, max(len(syllables), 1))]
    centres = np.array([(start + end) / 2 for start, end in syllables] or [0.0])
    positions = np.arange(num_samples)
    weights = np.stack([np.interp(positions, centres, targets[:, v]) for v in range(num_vowels)])
    return voiced, fricatives, weights


def _active_rms(signal: np.ndarray, active: np.ndarray) -> float:
    """RMS of ``signal`` where ``active`` is true, 1.0 when nothing is active."""
    return float(np.sqrt(np.mean(signal[active] ** 2))) if active.any() else 1.0


def synthesize_speech(num_samples: int, sample_rate: int, seed: int) -> torch.Tensor:
    """Speech-like audio: ``[num_samples]`` float32, peak 0.5-0.9, silence in the pauses.

    Deterministic: the same ``(num_samples, sample_rate, seed)`` gives bitwise identical samples
    in every process. ``sample_rate`` is in Hz and must be at least 8000; formants above 45% of
    it are clipped. Costs about 4 (8 kHz) to 20 (48 kHz) ms per second of audio on one core.
    """
    if sample_rate < MIN_SAMPLE_RATE:
        raise ValueError(f"sample_rate must be at least {MIN_SAMPLE_RATE} Hz, got {sample_rate}.")
    if num_samples <= 0:
        return torch.zeros(0, dtype=torch.float32)
    rng = np.random.default_rng(seed)
    # Every per-clip choice is drawn before any per-sample noise, so one seed gives the same
    # phrasing, vowels, pitch and level at every sample rate.
    voiced_envelope, fricative_envelopes, vowel_weights = _envelopes(num_samples, sample_rate, rng)
    speaker_scale = rng.uniform(0.9, 1.15)  # vocal-tract length: shifts every formant together
    target_peak = rng.uniform(0.5, 0.9)
    glottal_phase = rng.uniform()
    f0_hz = _pitch_contour(num_samples, sample_rate, rng)
    nyquist_guard = 0.45 * sample_rate

    # Filtering the source once per vowel target with fixed resonators, then cross-fading the
    # outputs, gives time-varying formants while every filter stays time-invariant (and fast).
    formants = np.minimum(VOWEL_FORMANTS_HZ * speaker_scale, nyquist_guard)
    bandwidths = np.broadcast_to(FORMANT_BANDWIDTHS_HZ, formants.shape)
    a, b = _resonator_coefficients(formants, bandwidths, sample_rate)
    source = _glottal_source(f0_hz, sample_rate, glottal_phase)
    source = source + 0.02 * rng.standard_normal(num_samples)  # aspiration noise
    vowels = _filter_cascade(np.tile(source, (formants.shape[0], 1)), a, b)
    voiced = (vowel_weights * vowels).sum(axis=0)
    emphasis = np.exp(-2.0 * np.pi * PRE_EMPHASIS_CORNER_HZ / sample_rate)
    voiced = (voiced - emphasis * np.concatenate([[0.0], voiced[:-1]])) * voiced_envelope

    fricative_centres = np.minimum(FRICATIVE_CENTRES_HZ, nyquist_guard)
    a, b = _resonator_coefficients(fricative_centres, FRICATIVE_BANDWIDTHS_HZ, sample_rate)
    noise = rng.standard_normal((fricative_centres.size, num_samples))
    fricatives = (_filter_cascade(noise, a[:, None], b[:, None]) * fricative_envelopes).sum(0)

    # Fricatives sit about 9 dB below the voiced level, as in running speech.
    voiced_rms = _active_rms(voiced, voiced_envelope > 0)
    fricative_rms = _active_rms(fricatives, fricative_envelopes.sum(0) > 0.5)
    speech = voiced + fricatives * (0.35 * voiced_rms / max(fricative_rms, 1e-12))
    peak = np.abs(speech).max()
    if peak > 0:
        speech = speech * (target_peak / peak)
    return torch.from_numpy(speech.astype(np.float32))


class SyntheticSpeech(Dataset):
    """``num_items`` clips of :func:`synthesize_speech`, each ``duration_seconds`` long.

    Item ``i`` is ``{"audio": [1, T] float32, "length": T, "index": i}`` with
    ``T = round(duration_seconds * sample_rate)``, generated on the fly from
    ``derive_seed(seed, i)``, so it is the same in every epoch, worker and process.
    """

    def __init__(self, num_items: int, duration_seconds: float, sample_rate: int, seed: int = 0) -> None:
        if num_items < 0:
            raise ValueError(f"num_items must be non-negative, got {num_items}.")
        if duration_seconds <= 0:
            raise ValueError(f"duration_seconds must be positive, got {duration_seconds}.")
        self.num_items = num_items
        self.num_samples = round(duration_seconds * sample_rate)
        self.sample_rate = sample_rate
        self.seed = seed

    def __len__(self) -> int:
        return self.num_items

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.num_items:
            raise IndexError(f"Index {index} is out of range for {self.num_items} items.")
        audio = synthesize_speech(self.num_samples, self.sample_rate, derive_seed(self.seed, index))
        return {"audio": audio.unsqueeze(0), "length": self.num_samples, "index": index}
