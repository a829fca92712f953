"""Integrated loudness (ITU-R BS.1770, dB LUFS) of excerpts, and the gain that brings them to a target.

``torchaudio.functional.loudness`` measures 400 ms gating blocks; like audiotools (DAC's data library),
an excerpt shorter than 0.5 s is measured zero-padded to 0.5 s, and silence (every block below the
-70 LUFS absolute gate, where BS.1770 is undefined) reads -70 LUFS, so the gain stays finite.
"""

import torch
import torch.nn.functional as functional
import torchaudio.functional as audio_functional

MIN_LOUDNESS_DB = -70.0
MIN_MEASURED_SECONDS = 0.5


def integrated_loudness_db(audio: torch.Tensor, sample_rate: int) -> float:
    """Loudness of mono ``audio`` ``[1, T]`` in dB LUFS, at least ``MIN_LOUDNESS_DB``."""
    min_samples = round(MIN_MEASURED_SECONDS * sample_rate)
    # float64: in float32 the K-weighting filters' decay over the zero padding runs through subnormal
    # numbers, which doubles the time of the measurement.
    padded = functional.pad(audio.double(), (0, max(0, min_samples - audio.shape[-1])))
    loudness = float(audio_functional.loudness(padded, sample_rate))
    # NaN when no block passes the absolute gate.
    return loudness if loudness > MIN_LOUDNESS_DB else MIN_LOUDNESS_DB


def loudness_gain(measured_db: float, target_db: float) -> float:
    """The linear gain that moves a loudness of ``measured_db`` to ``target_db`` (both dB LUFS)."""
    return 10.0 ** ((target_db - measured_db) / 20.0)
