"""`make demo`: the tiny codec trains and its validation SNR ends higher than at its first validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from codecgan import demo
from codecgan.diagnosis.history import MetricHistory


@pytest.mark.slow
def test_demo_improves_validation_snr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert demo.main() == 0
    history = MetricHistory.from_tensorboard_run(str(demo.RUN_DIR))
    snr = demo.scalar_series(history, "val/snr_db")
    mel = demo.scalar_series(history, "val/loss_mel")
    assert snr[0][0] == 0 and len(snr) >= 3  # a validation before the first step, then during training
    assert snr[-1][1] > snr[0][1] + 3.0
    assert mel[-1][1] < 0.7 * mel[0][1]
