"""How long a clip the PESQ pool accepts, and how long a worker may take to score one.

Measured with ``pesq`` 0.0.4 on a 2-core VM, wideband, synthetic speech: a 2 s clip costs about 50 ms of CPU,
10 s 0.5 s, 60 s 3.0 s, 90 s 6.6 s (the cost grows faster than the length), and about 93 s crashes the library
with a segmentation fault (its C code keeps at most 50 utterances, ``MAXNUTTERANCES``; speech with more pauses
reaches that sooner). A clip of hours is therefore refused by its length before any work (``too_long``), never
waited for, and a worker process that crashes or hangs on a shorter one costs at most the clip's time bound.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PesqLimits:
    """Bounds of the PESQ pool (``model.init_args.pesq_limits`` in an enhancement config).

    Args:
        max_clip_seconds: longer clips get no score and count as ``too_long``. 60 s is 3 s of PESQ work, well
            below the crash near 93 s; papers' test utterances (VoiceBank-DEMAND, DNS) are shorter than 20 s.
        timeout_s: the constant part of a clip's time bound (covers a replacement worker's start, about 0.15 s).
        timeout_per_audio_second: the part per second of audio, about 100 times the measured cost per second.
            A worker that has not answered within ``timeout_s + timeout_per_audio_second * seconds`` is killed and
            replaced, and its clip counts as ``timeout``: 12 s for a 2 s crop, 70 s for a 60 s clip.
    """

    max_clip_seconds: float = 60.0
    timeout_s: float = 10.0
    timeout_per_audio_second: float = 1.0

    def __post_init__(self) -> None:
        if not self.max_clip_seconds >= 0.25:
            raise ValueError(
                f"pesq_limits.max_clip_seconds must be at least 0.25 (PESQ's shortest clip), got {self.max_clip_seconds}."
            )
        if not self.timeout_s > 0 or not self.timeout_per_audio_second >= 0:
            raise ValueError(
                "pesq_limits.timeout_s must be positive and pesq_limits.timeout_per_audio_second at least 0, got "
                f"{self.timeout_s} and {self.timeout_per_audio_second}."
            )

    def max_samples(self, sample_rate: int) -> int:
        """The longest clip accepted, in samples at ``sample_rate`` Hz."""
        return int(self.max_clip_seconds * sample_rate)

    def timeout_for(self, samples: int, sample_rate: int) -> float:
        """Seconds a worker may take to score a clip of ``samples`` samples at ``sample_rate`` Hz."""
        return self.timeout_s + self.timeout_per_audio_second * samples / sample_rate
