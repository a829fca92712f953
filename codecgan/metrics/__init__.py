"""Speech-quality metrics computed outside the graph: PESQ in worker processes, STOI per clip."""

from codecgan.metrics.common_length import cut_to_common_length, pad_to_batch
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
from codecgan.metrics.stoi import stoi_scores

__all__ = [
    "FAILURE_KINDS",
    "PendingPesq",
    "PesqHandle",
    "PesqLimits",
    "PesqPool",
    "PesqResult",
    "cut_to_common_length",
    "default_worker_count",
    "pad_to_batch",
    "score_clip",
    "stoi_scores",
    "to_device_without_waiting",
]
