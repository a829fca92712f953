"""The evaluation report: means over the utterances that have a value, failures listed by file, CSV and JSON."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from types import SimpleNamespace

from codecgan.evaluation.report import EvaluationReport, format_table, summarise

NAN = math.nan


def rows() -> list[dict]:
    return [
        {"utterance": 0, "system": "enhanced", "pesq_wb": 3.0, "stoi": 0.9},
        {"utterance": 0, "system": "noisy input", "pesq_wb": 2.0, "stoi": 0.8},
        {"utterance": 1, "system": "enhanced", "pesq_wb": NAN, "stoi": 0.7},
        {"utterance": 1, "system": "noisy input", "pesq_wb": 1.5, "stoi": 0.6},
    ]


def test_a_failed_score_is_listed_and_left_out_of_the_mean_not_counted_as_zero() -> None:
    summary = summarise([{**row, "file": f"p{row['utterance']}.wav"} for row in rows()])
    enhanced = summary["systems"]["enhanced"]["measures"]
    assert enhanced["pesq_wb"] == {"mean": 3.0, "scored": 1, "failed": ["p1.wav"]}
    assert math.isclose(enhanced["stoi"]["mean"], 0.8)
    assert summary["systems"]["noisy input"]["measures"]["pesq_wb"]["mean"] == 1.75
    table = format_table(summary)
    assert "| enhanced | 2 | 3.000 (1 scored) | 0.800 |" in table and "PESQ wb" in table


def test_the_report_writes_csv_and_json_into_the_run_folder(tmp_path: Path) -> None:
    report = EvaluationReport()
    report.on_test_epoch_start(None, None)
    report.on_test_batch_end(None, None, {"scores": rows()[:2]}, None, 0)
    report.on_test_batch_end(None, None, {"scores": rows()[2:]}, None, 1)
    trainer = SimpleNamespace(
        world_size=1,
        is_global_zero=True,
        log_dir=str(tmp_path),
        default_root_dir="",
        datamodule=SimpleNamespace(datasets={"test": SimpleNamespace(names=["a.wav", "b.wav"])}),
    )
    report.on_test_epoch_end(trainer, None)
    with (tmp_path / "metrics.csv").open() as file:
        table = list(csv.DictReader(file))
    assert [(r["file"], r["system"], r["pesq_wb"]) for r in table] == [
        ("a.wav", "enhanced", "3"),
        ("a.wav", "noisy input", "2"),
        ("b.wav", "enhanced", ""),
        ("b.wav", "noisy input", "1.5"),
    ]
    summary = json.loads((tmp_path / "metrics.json").read_text())
    assert summary["systems"]["enhanced"]["measures"]["pesq_wb"]["failed"] == ["b.wav"]
