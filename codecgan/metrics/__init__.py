"""Speech-quality metrics computed outside the graph: PESQ in worker processes, STOI per clip, and the vocoder
measures (mel-cepstral distortion, F0 measures) per utterance."""

from codecgan.metrics.common_length import cut_to_common_length, pad_to_batch
from codecgan.metrics.mel_cepstral_distortion import all_pass_alpha, mel_cepstral_distortion, mel_cepstrum
from codecgan.metrics.pending_pesq import PendingPesq
from codecgan.metrics.pesq_limits import PesqLimits
from codecgan.metrics.pesq_pool import (
    PesqHandle,
    PesqPool,
    PesqResult,
    default_worker_count,
    to_device_without_waiting,
)
from codecgan.metrics.pesq_worker import FAILURE_KINDS, score_clip
from codecgan.metrics.pitch_measures import PitchMeasures, pitch_measures, track_f0
from codecgan.metrics.stoi import stoi_scores

__all__ = [
    "FAILURE_KINDS",
    "PendingPesq",
    "PesqHandle",
    "PesqLimits",
    "PesqPool",
    "PesqResult",
    "PitchMeasures",
    "all_pass_alpha",
    "cut_to_common_length",
    "default_worker_count",
    "mel_cepstral_distortion",
    "mel_cepstrum",
    "pad_to_batch",
    "pitch_measures",
    "score_clip",
    "stoi_scores",
    "to_device_without_waiting",
    "track_f0",
]
