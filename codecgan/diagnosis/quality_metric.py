"""The family's quality metric: the validation measure a run is judged by, and which way is better.

One definition for every rule that watches quality (LOSS_METRIC_DIVERGENCE, DISCRIMINATOR_OVERPOWERING,
LR_VANISHED), for the live callbacks that feed them, and for the `codecgan confirm` experiments that decide on quality,
so a finding, its live alarm and its experiment read the same metric. The first candidate a run logs is its quality
metric:

- `val/pesq` (higher is better): the enhancer's; its listeners' scores follow it.
- `val/loss_mel` (lower is better): the codec's. GAN codecs trade waveform SNR for perceptual quality, and a
  low-bitrate codec can sit below 0 dB SNR while it improves, so it is read on its mel distance.
- `val/mel_distance` (lower is better): the vocoder's (`VocoderGAN`), the L1 of its log-mels. A vocoder hears only
  the mel, which holds no phase, so its waveform SNR says nothing about its quality.
- `val/si_sdr` (higher is better), for a module that logs neither (SignalStats logs it): scale-invariant, so a level
  error, which AMPLITUDE_UNSTABLE reports on its own, does not count as lost quality.
- `val/snr_db` (higher is better), the last resort.

codecgan's enhancer logs no mel distance, its codec no PESQ and its vocoder neither, so each family gets its own
measure whatever the order of the first three; a custom module that logs both is judged on PESQ.
"""

from __future__ import annotations

import math
from typing import Any, Collection, Mapping

from codecgan.diagnosis import tags
from codecgan.diagnosis.history import TAG_SUFFIXES, MetricHistory

QUALITY_METRICS: tuple[tuple[str, str], ...] = (
    (tags.VAL_PESQ, "max"),
    (tags.VAL_LOSS_MEL, "min"),
    (tags.VAL_MEL_DISTANCE, "min"),
    (tags.VAL_SI_SDR, "max"),
    (tags.VAL_SNR, "max"),
)
DIRECTIONS = dict(QUALITY_METRICS)


def base_tag(tag: str) -> str:
    """`tag` without the `_epoch` / `_step` suffix Lightning adds to a metric logged on both axes."""
    for suffix in TAG_SUFFIXES:
        if suffix and tag.endswith(suffix):
            return tag[: -len(suffix)]
    return tag


def direction(tag: str) -> str:
    """ "max" when a higher `tag` is better, "min" when lower is; "max" for a metric that is not a candidate."""
    return DIRECTIONS.get(base_tag(tag), "max")


def quality_metric(history: MetricHistory) -> tuple[str, str] | None:
    """(tag, direction) of the first candidate `history` holds points of (under its own tag or Lightning's suffixed
    one); None when it holds none."""
    return next(((tag, mode) for tag, mode in QUALITY_METRICS if history.has(tag)), None)


def logged_quality_metric(names: Collection[str]) -> tuple[str, str] | None:
    """(tag, direction) of the first candidate among logged metric names (`trainer.callback_metrics`, as `<tag>` or
    `<tag>_epoch`); None when none is logged."""
    return next(((tag, mode) for tag, mode in QUALITY_METRICS if tag in names or tag + "_epoch" in names), None)


def quality_values(metrics: Mapping[str, Any]) -> dict[str, float]:
    """{candidate tag: value} of every candidate in `metrics` (a `trainer.callback_metrics`; `<tag>` before
    `<tag>_epoch`) whose value is finite. A live callback records them all at each validation end, so its rule chooses
    among the same tags as `codecgan diagnose` does in the logs."""
    values = {}
    for tag, _ in QUALITY_METRICS:
        name = next((name for name in (tag, tag + "_epoch") if name in metrics), None)
        if name is not None and math.isfinite(value := float(metrics[name])):
            values[tag] = value
    return values
