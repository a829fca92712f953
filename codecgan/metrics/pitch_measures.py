"""F0 measures of a vocoder's output against the recording it resynthesises: pitch RMSE in cents, periodicity
RMSE and voiced/unvoiced F1, from WORLD's F0 tracker and aperiodicity (``pyworld``, no model download)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

# The F0 search range (Hz): below the lowest male voices, above the highest speaking (not singing) voices.
F0_FLOOR_HZ = 50.0
F0_CEIL_HZ = 800.0
# WORLD's frame step (ms); both signals are analysed on the same grid, so frames pair by index.
FRAME_PERIOD_MS = 5.0
# "harvest": WORLD's robust tracker (about 0.5 s of CPU per second of audio); "dio": DIO refined by StoneMask,
# about 20 times faster, with less reliable voicing decisions.
TRACKERS = ("harvest", "dio")


@dataclass(frozen=True)
class PitchMeasures:
    """One utterance's F0 measures; lower is better except ``vuv_f1``.

    ``pitch_rmse_cents``: RMS of ``1200 log2(f0_estimate / f0_reference)`` over the frames voiced in both (NaN if
    there are none). ``periodicity_rmse``: RMS difference of the frame periodicities (``frame_periodicities``)
    over all frames, in [0, 1]. ``vuv_f1``: F1 of the estimate's voicing decisions with voiced as the positive
    class and the reference's decisions as the truth (NaN if neither signal has a voiced frame).
    ``vuv_error_rate``: the fraction of frames whose decisions differ. The counts say how many frames each
    value rests on: ``frames`` is 0 (and every value NaN) when the utterance was too short or silent to analyse.
    """

    pitch_rmse_cents: float
    periodicity_rmse: float
    vuv_f1: float
    vuv_error_rate: float
    frames: int
    reference_voiced_frames: int
    estimate_voiced_frames: int
    voiced_in_both_frames: int


NOT_ANALYSED = PitchMeasures(math.nan, math.nan, math.nan, math.nan, 0, 0, 0, 0)


def as_float64_pair(reference: np.ndarray | torch.Tensor, estimate: np.ndarray | torch.Tensor) -> tuple:
    """The two signals as contiguous float64 arrays ``[T]`` (WORLD's type), the longer cut to the shorter; a
    batch of several utterances is a ``ValueError``."""
    pair = []
    for name, signal in (("reference", reference), ("estimate", estimate)):
        if isinstance(signal, torch.Tensor):
            signal = signal.detach().cpu().double().numpy()
        signal = np.asarray(signal, dtype=np.float64)
        if sum(size > 1 for size in signal.shape) > 1:
            raise ValueError(f"{name} must be one utterance, [T] (or [1, T], [1, 1, T]); got {signal.shape}.")
        pair.append(np.ascontiguousarray(signal.reshape(-1)))
    length = min(pair[0].size, pair[1].size)
    return pair[0][:length], pair[1][:length]


def can_analyse(reference: np.ndarray, estimate: np.ndarray, sample_rate: int, f0_floor_hz: float) -> bool:
    """Whether WORLD can measure this pair: at least three periods of ``f0_floor_hz`` long (WORLD cannot analyse
    less), a reference that is not all zeros, and no NaN or infinity in either signal (a diverged vocoder's
    output is a failure to count, not a voiceless utterance)."""
    long_enough = reference.size >= 3 * sample_rate / f0_floor_hz
    return (
        long_enough and bool(np.any(reference)) and bool(np.isfinite(reference).all() and np.isfinite(estimate).all())
    )


def track_f0(
    audio: np.ndarray,
    sample_rate: int,
    frame_period_ms: float = FRAME_PERIOD_MS,
    f0_floor_hz: float = F0_FLOOR_HZ,
    f0_ceil_hz: float = F0_CEIL_HZ,
    tracker: str = "harvest",
) -> tuple[np.ndarray, np.ndarray]:
    """WORLD's F0 (Hz, 0 where unvoiced) and frame times (s) of ``audio`` (float64 ``[T]``): two ``[F]`` arrays,
    ``F = 1 + floor(T / sample_rate * 1000 / frame_period_ms)``."""
    import pyworld

    if tracker not in TRACKERS:
        raise ValueError(f"tracker must be one of {', '.join(TRACKERS)}; got {tracker!r}.")
    if tracker == "harvest":
        return pyworld.harvest(
            audio, sample_rate, f0_floor=f0_floor_hz, f0_ceil=f0_ceil_hz, frame_period=frame_period_ms
        )
    f0, times = pyworld.dio(audio, sample_rate, f0_floor=f0_floor_hz, f0_ceil=f0_ceil_hz, frame_period=frame_period_ms)
    return pyworld.stonemask(audio, f0, times, sample_rate), times


def frame_periodicities(audio: np.ndarray, f0: np.ndarray, times: np.ndarray, sample_rate: int) -> np.ndarray:
    """Per-frame periodicity in [0, 1], ``[F]``: one minus the mean, over all frequency bins from 0 Hz to Nyquist,
    of WORLD's D4C aperiodicity (the aperiodic share of the power, in [0, 1]) computed with the signal's own F0
    track. About 0 in unvoiced frames (D4C sets their aperiodicity to 1); at 16 kHz a tone with every harmonic up
    to Nyquist scores about 0.9, and about 0.7 with harmonics up to 4 kHz only (bins without harmonics count as
    aperiodic)."""
    import pyworld

    aperiodicity = pyworld.d4c(audio, f0, times, sample_rate)
    return 1.0 - np.mean(aperiodicity, axis=1)


def pitch_measures(
    reference: np.ndarray | torch.Tensor,
    estimate: np.ndarray | torch.Tensor,
    sample_rate: int,
    frame_period_ms: float = FRAME_PERIOD_MS,
    f0_floor_hz: float = F0_FLOOR_HZ,
    f0_ceil_hz: float = F0_CEIL_HZ,
    tracker: str = "harvest",
) -> PitchMeasures:
    """F0 measures (``PitchMeasures``) of ``estimate`` against ``reference`` (both ``[T]`` at ``sample_rate``; the
    longer is cut to the shorter).

    Each signal's F0 is tracked on its own (``track_f0``, ``f0_floor_hz``..``f0_ceil_hz``, every
    ``frame_period_ms``), and frames pair by index, as a vocoder's output is time-aligned with its input.
    Signals shorter than three periods of ``f0_floor_hz`` (60 ms at 50 Hz; WORLD cannot analyse less), a
    reference that is all zeros, or a NaN or infinity in either signal give ``NOT_ANALYSED`` (NaN values, 0
    frames), never an exception (``can_analyse``).
    """
    reference_audio, estimate_audio = as_float64_pair(reference, estimate)
    if not can_analyse(reference_audio, estimate_audio, sample_rate, f0_floor_hz):
        return NOT_ANALYSED
    tracks = [
        track_f0(audio, sample_rate, frame_period_ms, f0_floor_hz, f0_ceil_hz, tracker)
        for audio in (reference_audio, estimate_audio)
    ]
    (reference_f0, times), (estimate_f0, estimate_times) = tracks
    periodicity_difference = frame_periodicities(reference_audio, reference_f0, times, sample_rate) - (
        frame_periodicities(estimate_audio, estimate_f0, estimate_times, sample_rate)
    )

    reference_voiced = reference_f0 > 0
    estimate_voiced = estimate_f0 > 0
    both = reference_voiced & estimate_voiced
    true_positives = int(np.sum(both))
    false_positives = int(np.sum(estimate_voiced & ~reference_voiced))
    false_negatives = int(np.sum(reference_voiced & ~estimate_voiced))
    decided_voiced = 2 * true_positives + false_positives + false_negatives
    cents = 1200.0 * np.log2(estimate_f0[both] / reference_f0[both])
    return PitchMeasures(
        pitch_rmse_cents=float(np.sqrt(np.mean(cents**2))) if true_positives else math.nan,
        periodicity_rmse=float(np.sqrt(np.mean(periodicity_difference**2))),
        vuv_f1=2 * true_positives / decided_voiced if decided_voiced else math.nan,
        vuv_error_rate=float(np.mean(reference_voiced != estimate_voiced)),
        frames=int(reference_f0.size),
        reference_voiced_frames=int(np.sum(reference_voiced)),
        estimate_voiced_frames=int(np.sum(estimate_voiced)),
        voiced_in_both_frames=true_positives,
    )
