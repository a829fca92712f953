"""`codecgan diagnose`: ranking, the text report, and one-line errors."""

from __future__ import annotations

from pathlib import Path

from story_traces import codec_stuck_discriminator, healthy_codec, write_csv

from codecgan.diagnosis import Finding, rank, render_text
from codecgan.diagnosis.cli import diagnose_main


def finding(code: str, severity: str, epoch: int | None) -> Finding:
    return Finding(code, severity, None, epoch)


def test_rank_puts_severity_first_then_the_earliest() -> None:
    ranked = rank(
        [finding("A", "warning", 1), finding("B", "critical", 9), finding("C", "warning", 0), finding("D", "info", 0)]
    )
    assert [f.code for f in ranked] == ["B", "C", "A", "D"]


def test_text_report_is_numbered_with_evidence_and_suggestion(tmp_path: Path, capsys) -> None:
    assert diagnose_main([str(write_csv(tmp_path / "codec.csv", codec_stuck_discriminator()))]) == 0
    out = capsys.readouterr().out
    assert out.startswith("codecgan diagnose: 4 findings in ")
    assert " 1. [warning] DISCRIMINATOR_AT_CHANCE (first at epoch 3)" in out
    assert "evidence: train/loss_d stayed at 99.5%" in out and "to confirm:" in out


def test_healthy_run_says_so(tmp_path: Path, capsys) -> None:
    assert diagnose_main([str(write_csv(tmp_path / "ok.csv", healthy_codec()))]) == 0
    assert "no findings" in capsys.readouterr().out


def test_missing_path_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    assert diagnose_main([str(tmp_path / "missing")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and "does not exist" in captured.err


def test_unreadable_file_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    path = tmp_path / "binary.csv"
    path.write_bytes(b"\xff\xfe\x00garbage")
    assert diagnose_main([str(path)]) == 2
    assert capsys.readouterr().err.startswith("codecgan diagnose: error: ")


def test_render_text_without_findings() -> None:
    assert "no findings" in render_text([], "x.csv", ["x.csv"])
