"""Scalars written with SummaryWriter, Lightning-style (an `epoch` scalar at each logging step), diagnosed from the
run directory and from a parent of runs."""

from __future__ import annotations

import json
from pathlib import Path

from story_traces import codec_stuck_discriminator, enhancement_divergence
from torch.utils.tensorboard import SummaryWriter

from codecgan.diagnosis.cli import diagnose_main


def write_run(directory: Path, rows: list[dict]) -> None:
    writer = SummaryWriter(str(directory))
    for index, row in enumerate(rows):
        step = row.get("step", 100 * (index + 1))
        writer.add_scalar("epoch", row["epoch"], step)
        for tag, value in row.items():
            if tag not in ("step", "epoch"):
                writer.add_scalar(tag, value, step)
    writer.close()


def test_tensorboard_run_directory_round_trip(tmp_path: Path, capsys) -> None:
    write_run(tmp_path / "run", enhancement_divergence())
    assert diagnose_main([str(tmp_path / "run"), "--json"]) == 0
    findings = json.loads(capsys.readouterr().out)
    divergence = next(f for f in findings if f["code"] == "LOSS_METRIC_DIVERGENCE")
    assert divergence["first_epoch"] <= 9 and divergence["first_step"] == 250 * (divergence["first_epoch"] + 1)


def test_parent_of_runs_names_the_run_in_each_finding(tmp_path: Path, capsys) -> None:
    write_run(tmp_path / "runs" / "enhancement", enhancement_divergence())
    write_run(tmp_path / "runs" / "codec", codec_stuck_discriminator())
    assert diagnose_main([str(tmp_path / "runs"), "--json"]) == 0
    findings = json.loads(capsys.readouterr().out)
    codes = {(f["code"], f["evidence"].split(",")[0]) for f in findings}
    assert ("LOSS_METRIC_DIVERGENCE", "In run enhancement") in codes
    assert ("DISCRIMINATOR_AT_CHANCE", "In run codec") in codes
