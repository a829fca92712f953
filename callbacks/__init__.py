"""codecgan's diagnostic callbacks: each measures one thing, logs it under `diag/` or `val/`, and raises the
matching diagnosis rule's finding as an alarm (the same rules `codecgan diagnose` runs offline).

All read only the documented `training_step` / `validation_step` outputs (docs/interfaces.md) and logged metrics,
keep their state as tensors and Python primitives, and reduce across DDP ranks as sums of counts.
"""

from callbacks.alarms import AlarmBook
from callbacks.audio_samples import AudioSamples
from callbacks.codebook_usage import CodebookUsage
from callbacks.data_leak import DataLeakCheck
from callbacks.diagnostics_dashboard import DiagnosticsDashboard
from callbacks.discriminator_health import DiscriminatorHealth
from callbacks.divergence_monitor import DivergenceMonitor
from callbacks.eval_determinism import EvalDeterminism
from callbacks.gradient_balance import GradientBalance
from callbacks.learning_rate_health import LearningRateHealth
from callbacks.loss_spikes import LossSpikes
from callbacks.metric_discriminator_monitor import MetricDiscriminatorMonitor
from callbacks.pesq_health import PesqHealth
from callbacks.rank_consistency import RankConsistency
from callbacks.resume_continuity import ResumeContinuity
from callbacks.signal_stats import SignalStats

__all__ = [
    "AlarmBook",
    "AudioSamples",
    "CodebookUsage",
    "DataLeakCheck",
    "DiagnosticsDashboard",
    "DiscriminatorHealth",
    "DivergenceMonitor",
    "EvalDeterminism",
    "GradientBalance",
    "LearningRateHealth",
    "LossSpikes",
    "MetricDiscriminatorMonitor",
    "PesqHealth",
    "RankConsistency",
    "ResumeContinuity",
    "SignalStats",
]
