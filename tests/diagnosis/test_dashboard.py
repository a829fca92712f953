"""The "codecgan diagnostics" custom-scalars layout: every chart matches the tags the callbacks and module log."""

from __future__ import annotations

import re
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard import SummaryWriter

from codecgan.diagnosis import tags
from codecgan.diagnosis.dashboard import LAYOUT_TITLE, diagnostics_layout

EXPECTED_TAGS = [
    tags.TRAIN_LOSS_G,
    "train/loss_g_step",
    tags.VAL_PESQ,
    tags.VAL_SNR,
    tags.METRIC_D_MAE,
    tags.METRIC_D_CORR,
    tags.PESQ_NONE_RATE,
    tags.TRAIN_LOSS_D,
    tags.D_LOSS_CHANCE,
    tags.TRAIN_LOSS_FM,
    tags.VAL_AMPLITUDE_RATIO,
    "diag/grad_share/loss_adv",
    "diag/codebook_entropy_fraction/0",
    "diag/alarm/NEGATIVE_SNR",
]


def test_every_diagnostic_tag_has_a_chart() -> None:
    regexes = [r for chart in diagnostics_layout()[LAYOUT_TITLE].values() for r in chart[1]]
    for tag in EXPECTED_TAGS:
        assert any(re.search(regex, tag) for regex in regexes), tag
    assert not any(re.search(regex, "val/pesq_hi") for regex in regexes)


def test_layout_is_accepted_by_tensorboard(tmp_path: Path) -> None:
    writer = SummaryWriter(str(tmp_path))
    writer.add_custom_scalars(diagnostics_layout())
    writer.close()
    accumulator = EventAccumulator(str(tmp_path))
    accumulator.Reload()
    assert "custom_scalars__config__" in accumulator.Tags()["tensors"]


VOCODER_TAGS = [
    tags.TRAIN_LOSS_G,
    tags.VAL_MEL_DISTANCE,
    "train/loss_mel",
    tags.TRAIN_LOSS_ADV,
    tags.TRAIN_LOSS_FM,
    tags.TRAIN_LOSS_D,
    tags.D_LOSS_CHANCE,
    tags.D_UPDATE_RATIO,
    tags.VAL_AMPLITUDE_RATIO,
    "diag/grad_share/loss_mel",
    "diag/alarm/DISCRIMINATOR_FROZEN",
]


def test_the_vocoder_layout_charts_its_mel_distance_and_no_pesq() -> None:
    charts = diagnostics_layout("vocoder")[LAYOUT_TITLE]
    regexes = [r for chart in charts.values() for r in chart[1]]
    for tag in VOCODER_TAGS:
        assert any(re.search(regex, tag) for regex in regexes), tag
    assert not any(re.search(regex, tag) for regex in regexes for tag in (tags.VAL_PESQ, tags.METRIC_D_MAE))
    assert list(charts)[:2] == ["training loss", "validation mel distance (log-mel L1)"]
    assert diagnostics_layout("codec") == diagnostics_layout()
