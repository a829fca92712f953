"""codecgan's STFT distance is DAC's (a fixture written by descript-audio-codec itself)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from codecgan.metrics.stft_distance import multiscale_stft_distance

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "dac"
sys.path.insert(0, str(FIXTURES))
from stft_signals import signals  # noqa: E402


@pytest.mark.parametrize(
    "case", json.loads((FIXTURES / "stft_distance.json").read_text()), ids=lambda c: str(c["seed"])
)
def test_stft_distance_equals_dacs(case: dict) -> None:
    estimate, reference = signals(case["seed"], case["sample_rate"], case["seconds"])
    value = multiscale_stft_distance(torch.from_numpy(estimate), torch.from_numpy(reference))
    assert value.item() == pytest.approx(case["distance"], rel=1e-6)


def test_identical_signals_are_at_distance_zero() -> None:
    audio = torch.randn(2, 1, 8000)
    assert multiscale_stft_distance(audio, audio).item() == 0.0
