"""Ranking and rendering of findings: the text and JSON that `codecgan diagnose` prints."""

from __future__ import annotations

import dataclasses
import json
import math
import textwrap

from codecgan.diagnosis.findings import Finding
from codecgan.diagnosis.history import HistoryError, MetricHistory, load_histories
from codecgan.diagnosis.registry import run_rules
from codecgan.diagnosis.tags import ALARM_PREFIX

TEXT_WIDTH = 100


def rank(findings: list[Finding]) -> list[Finding]:
    """Most severe first; within a severity, the earliest first (unknown positions last), then by code."""

    def key(finding: Finding) -> tuple:
        epoch = finding.first_epoch if finding.first_epoch is not None else math.inf
        step = finding.first_step if finding.first_step is not None else math.inf
        return (-finding.severity_rank, epoch, step, finding.code)

    return sorted(findings, key=key)


def diagnose_history(history: MetricHistory) -> list[Finding]:
    """The ranked findings of every rule on one history, with the rule settings the run recorded (`diag/config`)."""
    return rank(run_rules(history, history.run_config.get("rules")))


def diagnose_path(path: str) -> tuple[list[Finding], list[str]]:
    """The ranked findings for a CSV file or TensorBoard directory, and the names of the runs read.

    Each run's rules run with the settings its live callbacks used, where the run recorded them (`diag/config`: the
    monitored metric and its direction, the GAN terms, thresholds set in the config). With several runs, each
    finding's evidence starts with the run it came from.
    """
    runs = load_histories(path)
    findings: list[Finding] = []
    for name, history in runs:
        try:
            found = run_rules(history, history.run_config.get("rules"))
        except ValueError as error:
            raise HistoryError(f"Run {name}: {error}") from error
        for finding in found:
            if len(runs) > 1:
                finding = dataclasses.replace(finding, run=name)
            findings.append(finding)
    return rank(findings), [name for name, _ in runs]


def alarms_at_end(history: MetricHistory) -> list[str]:
    """The codes whose live alarm was active when the run's logs end: the last value of `diag/alarm/<CODE>` is 1
    (the callbacks log 1 while an alarm is active and 0 once it clears)."""
    codes = []
    for tag in history.tags_with_prefix(ALARM_PREFIX):
        if history.series(tag)[-1].value == 1.0:
            codes.append(tag[len(ALARM_PREFIX) :])
    return codes


def render_json(findings: list[Finding]) -> str:
    """A JSON list of `Finding.to_dict` objects: code, severity, first_step, first_epoch, evidence, suggestion,
    evidence_values (the numbers as numbers) and run (with several runs)."""
    return json.dumps([finding.to_dict() for finding in findings], indent=2, ensure_ascii=False)


def render_text(findings: list[Finding], source: str, runs: list[str]) -> str:
    """A ranked, numbered list a person reads top to bottom."""
    run_text = f"{len(runs)} run{'s' if len(runs) != 1 else ''}"
    if not findings:
        return f"codecgan diagnose: no findings in {source} ({run_text}); every rule passed on the logged metrics."
    counts = ", ".join(
        f"{sum(f.severity == s for f in findings)} {s}"
        for s in ("critical", "warning", "info")
        if any(f.severity == s for f in findings)
    )
    lines = [
        f"codecgan diagnose: {len(findings)} finding{'s' if len(findings) != 1 else ''} in {source} "
        f"({run_text}; {counts})",
        "",
    ]
    for number, finding in enumerate(findings, start=1):
        position = ", ".join(
            part
            for part in (
                f"epoch {finding.first_epoch}" if finding.first_epoch is not None else "",
                f"step {finding.first_step}" if finding.first_step is not None else "",
            )
            if part
        )
        lines.append(
            f"{number:2d}. [{finding.severity}] {finding.code}" + (f" (first at {position})" if position else "")
        )
        for label, text in (("evidence", finding.evidence), ("to confirm", finding.suggestion)):
            lines += textwrap.wrap(text, TEXT_WIDTH, initial_indent=f"    {label}: ", subsequent_indent="      ")
        lines.append("")
    return "\n".join(lines).rstrip()
