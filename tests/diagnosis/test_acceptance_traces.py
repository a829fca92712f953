"""Issue 4, acceptance 1: the two stories and healthy runs, replayed through `codecgan diagnose --json` from CSV."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from story_traces import (
    codec_stuck_discriminator,
    enhancement_divergence,
    healthy_codec,
    healthy_enhancement,
    write_csv,
)

from codecgan.diagnosis.cli import diagnose_main


def diagnose_json(path: Path, capsys: pytest.CaptureFixture) -> list[dict]:
    assert diagnose_main([str(path), "--json"]) == 0
    findings = json.loads(capsys.readouterr().out)
    for finding in findings:
        keys = {"code", "severity", "first_step", "first_epoch", "evidence", "suggestion", "evidence_values"}
        assert set(finding) == keys
        assert isinstance(finding["evidence_values"], dict)
    return findings


def test_enhancement_story_is_a_loss_metric_divergence_by_epoch_9(tmp_path: Path, capsys) -> None:
    findings = diagnose_json(write_csv(tmp_path / "enhancement.csv", enhancement_divergence()), capsys)
    divergence = next(f for f in findings if f["code"] == "LOSS_METRIC_DIVERGENCE")
    assert divergence["first_epoch"] <= 9
    assert divergence["severity"] == "critical"
    assert "2.64" in divergence["evidence"] and "2.07" in divergence["evidence"] and "epoch 6" in divergence["evidence"]
    assert findings[0]["code"] == "LOSS_METRIC_DIVERGENCE"


def test_codec_story_names_the_stuck_discriminator_and_its_consequences(tmp_path: Path, capsys) -> None:
    findings = diagnose_json(write_csv(tmp_path / "codec.csv", codec_stuck_discriminator()), capsys)
    by_code = {f["code"]: f for f in findings}
    assert {"DISCRIMINATOR_AT_CHANCE", "FEATURE_MATCHING_VANISHED", "NEGATIVE_SNR", "AMPLITUDE_UNSTABLE"} <= set(
        by_code
    )
    assert by_code["DISCRIMINATOR_AT_CHANCE"]["first_epoch"] <= 3
    assert "-3.69 dB" in by_code["NEGATIVE_SNR"]["evidence"]
    assert "0.849" in by_code["AMPLITUDE_UNSTABLE"]["evidence"] and "1.136" in by_code["AMPLITUDE_UNSTABLE"]["evidence"]


@pytest.mark.parametrize(
    "rows",
    [healthy_enhancement(0.0), healthy_enhancement(0.04), healthy_enhancement(0.06), healthy_codec()],
    ids=["enhancement-smooth", "enhancement-noisy-plateau", "enhancement-noisier-plateau", "codec"],
)
def test_healthy_traces_raise_nothing_above_info(rows: list[dict], tmp_path: Path, capsys) -> None:
    findings = diagnose_json(write_csv(tmp_path / "healthy.csv", rows), capsys)
    assert [f["code"] for f in findings if f["severity"] != "info"] == []
