"""Rules return numbers; `codecgan.diagnosis.wording` alone words them, and `--json` carries the numbers as numbers."""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

from story_traces import codec_stuck_discriminator, enhancement_divergence, write_csv

from codecgan.diagnosis import Finding
from codecgan.diagnosis.cli import diagnose_main
from codecgan.diagnosis.registry import RULES
from codecgan.diagnosis.wording import INFO_NOTES, WORDING

PACKAGE = Path(__file__).resolve().parents[2] / "codecgan" / "diagnosis"


def test_every_rule_code_has_its_wording() -> None:
    assert set(WORDING) == set(RULES)


def test_wording_modules_import_no_rule_code() -> None:
    """Wording depends on tag names and phrases only, never on the rules, histories or findings it words."""
    for path in (PACKAGE / "wording").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = {alias.name for alias in node.names}
                allowed = node.module in ("__future__", "typing") or node.module.startswith(
                    "codecgan.diagnosis.wording"
                )
                assert allowed or (node.module == "codecgan.diagnosis" and names == {"tags"}), (path, node.module)


def test_rule_modules_build_no_sentences() -> None:
    """No f-string in a rule module: every number a finding quotes reaches the wording through its values."""
    for path in (PACKAGE / "rules").glob("*.py"):
        joined = [node for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.JoinedStr)]
        allowed = [node for node in joined if _in_raise(path, node)]
        assert len(joined) == len(allowed), f"{path.name} formats text at line {joined[0].lineno}"


def _in_raise(path: Path, target: ast.AST) -> bool:
    """An f-string inside a `raise` (an error message for bad settings) is not a finding's wording."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Raise) and any(
            isinstance(inner, ast.JoinedStr) and inner.lineno == target.lineno for inner in ast.walk(node)
        ):
            return True
    return False


def test_json_gives_the_numbers_the_evidence_quotes(tmp_path: Path, capsys) -> None:
    assert diagnose_main([str(write_csv(tmp_path / "story.csv", enhancement_divergence())), "--json"]) == 0
    divergence = next(f for f in json.loads(capsys.readouterr().out) if f["code"] == "LOSS_METRIC_DIVERGENCE")
    values = divergence["evidence_values"]
    assert values["metric"] == "val/pesq" and values["best"] == 2.64 and values["best_at"]["epoch"] == 6
    assert isinstance(values["worst"], float) and math.isclose(values["worst"], 2.07, abs_tol=1e-4)
    assert f"{values['best']:.2f}" in divergence["evidence"] and f"{values['worst']:.2f}" in divergence["evidence"]


def test_json_is_strict_and_a_settled_finding_says_why_it_is_info(tmp_path: Path, capsys) -> None:
    """NaN and infinities become null (strict JSON); the info note's numbers travel with the finding's values."""
    assert diagnose_main([str(write_csv(tmp_path / "codec.csv", codec_stuck_discriminator())), "--json"]) == 0
    text = capsys.readouterr().out
    findings = json.loads(text, parse_constant=lambda name: (_ for _ in ()).throw(ValueError(name)))
    at_chance = next(f for f in findings if f["code"] == "DISCRIMINATOR_AT_CHANCE")
    assert 0.99 < at_chance["evidence_values"]["held_min_ratio"] <= at_chance["evidence_values"]["held_max_ratio"]
    settled = Finding("DISCRIMINATOR_FROZEN", "warning", 3, 1, {**_frozen_values(), "last_ratio": math.nan})
    assert settled.to_dict()["evidence_values"]["last_ratio"] is None


def test_an_info_note_is_worded_from_its_values() -> None:
    from codecgan.diagnosis.trends import as_info

    finding = as_info(
        Finding("DISCRIMINATOR_FROZEN", "warning", 3, 1, _frozen_values()),
        "cleared",
        last_held={"epoch": 2, "step": 30},
        patience=3,
    )
    assert finding.severity == "info" and set(INFO_NOTES) >= {"cleared"}
    assert finding.evidence.endswith(
        "It last held for 3 rounds in a row at epoch 2 (step 30) and not since, so it is reported as info."
    )
    assert finding.to_dict()["evidence_values"]["reported_as_info"]["patience"] == 3
    assert Finding("X", "info", None, None, run="a").code == "X"


def _frozen_values() -> dict:
    return {
        "threshold": 1e-6,
        "largest_ratio": 2e-7,
        "patience": 3,
        "first": {"epoch": 1, "step": 12},
        "last_ratio": 1e-7,
        "last": {"epoch": 2, "step": 30},
    }
