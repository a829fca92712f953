"""Every diagnosis code has one registry entry (`codecgan.diagnosis.registry`), and every entry has all its pieces: a
rule that returns its findings, its wording, the callback that raises it live, a `codecgan confirm` experiment or the
reason there is none, and a failure-zoo overlay or the reason there is none. Fails when a code appears anywhere (a
rule's findings, the wording, a callback's `codes`, an experiment, a zoo overlay, `codecgan diagnose`'s words, the
documentation's callback table) without an entry."""

from __future__ import annotations

import ast
import inspect
import itertools
import json
import re
from pathlib import Path

import pytest

import callbacks
from callbacks.base import DiagnosticCallback
from codecgan.confirm.experiments import EXPERIMENTS, WITHOUT_EXPERIMENT
from codecgan.diagnosis import wording
from codecgan.diagnosis.cli import diagnose_main
from codecgan.diagnosis.code_list import codes_by_callback, render_codes_markdown
from codecgan.diagnosis.findings import SEVERITIES
from codecgan.diagnosis.registry import DIAGNOSES, REGISTRY, RULES
from codecgan.diagnosis.wording import WORDING
from tests.conftest import ROOT

PACKAGE = ROOT / "codecgan" / "diagnosis"
CODE = re.compile(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b")


def finding_calls(path: Path) -> list[ast.Call]:
    """The `Finding(...)` calls in a module whose first argument is a literal code."""
    calls = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Finding" and node.args:
            if isinstance(node.args[0], ast.Constant):
                calls.append(node)
    return calls


def literal_strings(path: Path) -> list[str]:
    """The string literals of a module (f-strings' literal parts included), docstrings left out."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


def diagnostic_callbacks() -> dict[str, type[DiagnosticCallback]]:
    """Every diagnostic callback class in `callbacks/`, by name."""
    found = {}
    pending = list(DiagnosticCallback.__subclasses__())
    while pending:
        cls = pending.pop()
        pending += cls.__subclasses__()
        if cls.__module__.startswith("callbacks."):
            found[cls.__name__] = cls
    return found


def test_the_registry_is_keyed_by_code_and_derives_the_rules_table() -> None:
    assert len(REGISTRY) == len(DIAGNOSES)
    assert list(RULES) == [d.code for d in DIAGNOSES]
    assert all(RULES[d.code] is d.rule for d in DIAGNOSES)


@pytest.mark.parametrize("diagnosis", DIAGNOSES, ids=lambda d: d.code)
def test_each_rule_returns_findings_of_its_own_code_at_the_registered_severities(diagnosis) -> None:
    assert diagnosis.rule.__doc__.startswith(f"{diagnosis.code}:"), diagnosis.rule.__name__
    module = Path(inspect.getsourcefile(diagnosis.rule))
    calls = [call for call in finding_calls(module) if call.args[0].value == diagnosis.code]
    assert calls, f"{module.name} builds no Finding({diagnosis.code!r}, ...)"
    low, high = (SEVERITIES.index(s) for s in diagnosis.severities)
    for call in calls:
        severity = call.args[1]
        options = [severity.body, severity.orelse] if isinstance(severity, ast.IfExp) else [severity]
        for option in options:
            if isinstance(option, ast.Constant):
                assert low <= SEVERITIES.index(option.value) <= high, (diagnosis.code, option.value)


def test_every_code_a_rule_can_return_is_registered() -> None:
    returned = {call.args[0].value for path in (PACKAGE / "rules").glob("*.py") for call in finding_calls(path)}
    assert returned == set(REGISTRY)


def test_every_worded_code_is_registered_and_every_code_is_worded() -> None:
    assert set(WORDING) == set(REGISTRY)
    assert all(d.wording is WORDING[d.code] for d in DIAGNOSES)


def test_every_code_codecgan_diagnose_can_print_is_registered() -> None:
    """The evidence and suggestions name other codes ("see DISCRIMINATOR_AT_CHANCE"); each must be one."""
    printing = [*Path(wording.__file__).parent.glob("*.py"), PACKAGE / "report.py", PACKAGE / "cli.py"]
    mentioned = {code for path in printing for text in literal_strings(path) for code in CODE.findall(text)}
    assert mentioned and mentioned <= set(REGISTRY), mentioned - set(REGISTRY)


def test_each_code_is_raised_live_by_the_registered_callback() -> None:
    classes = diagnostic_callbacks()
    raised = {code: f"callbacks.{name}" for name, cls in classes.items() for code in cls.codes}
    assert sum(len(cls.codes) for cls in classes.values()) == len(raised), "a code is raised by two callbacks"
    assert raised == {d.code: d.callback for d in DIAGNOSES}
    for d in DIAGNOSES:
        assert getattr(callbacks, d.callback_name) is classes[d.callback_name]  # importable as the config names it


def test_each_code_has_a_confirm_experiment_or_the_registered_reason() -> None:
    assert set(EXPERIMENTS) | set(WITHOUT_EXPERIMENT) == set(REGISTRY)
    for d in DIAGNOSES:
        assert bool(EXPERIMENTS.get(d.code)) != bool(d.without_experiment), d.code
        assert WITHOUT_EXPERIMENT.get(d.code, "") == d.without_experiment
        for experiment in EXPERIMENTS.get(d.code, ()):
            families = set(experiment.changes)
            assert d.family == "both" or families <= {d.family, "*"}, (d.code, experiment.name, families)


def zoo_hypotheses() -> dict[str, str]:
    """{overlay name: its hypothesis}, from each overlay's first line '# base: <config> | hypothesis: <text>'."""
    overlays = sorted((ROOT / "experiments" / "zoo").glob("*.yaml"))
    assert overlays
    return {path.stem: path.read_text().splitlines()[0].split("| hypothesis:", 1)[1].strip() for path in overlays}


def test_each_zoo_overlay_induces_a_registered_code_or_is_a_control() -> None:
    """A fault overlay's hypothesis ends with the code it should raise, '(CODE).'; a control's starts 'control:'."""
    expected = {}
    for name, hypothesis in zoo_hypotheses().items():
        if hypothesis.startswith("control:"):
            continue
        match = re.search(r"\(([A-Z_]+)\)\.$", hypothesis)
        assert match, f"experiments/zoo/{name}.yaml: the hypothesis must end with '(CODE).': {hypothesis!r}"
        expected[name] = match.group(1)
    assert set(expected.values()) <= set(REGISTRY), set(expected.values()) - set(REGISTRY)
    assert expected == {name: d.code for d in DIAGNOSES for name in d.zoo}


def test_each_entry_is_complete() -> None:
    classes = diagnostic_callbacks()
    overlays = zoo_hypotheses()
    for d in DIAGNOSES:
        assert callable(d.rule) and d.code in WORDING and callable(d.wording), d.code
        assert d.code in classes[d.callback_name].codes, d.code
        assert d.description and "\n" not in d.description and not d.description.endswith("."), d.code
        assert bool(d.zoo) != bool(d.without_zoo) and all(name in overlays for name in d.zoo), d.code


def test_list_codes_prints_the_registry(capsys: pytest.CaptureFixture) -> None:
    assert diagnose_main(["--list-codes"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for d in DIAGNOSES:
        (line,) = [line for line in lines if line.startswith(d.code + " ")]
        assert d.severity_range in line and d.callback_name in line and line.endswith(d.description)
    assert diagnose_main(["--list-codes", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [entry["code"] for entry in listed] == list(REGISTRY)
    assert listed[0]["severities"] == list(DIAGNOSES[0].severities)
    assert all(entry["callback"] == REGISTRY[entry["code"]].callback for entry in listed)


def cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def table_rows(lines: list[str]) -> list[list[str]]:
    """The cells of a Markdown table's rows after its header and separator."""
    return [cells(line) for line in lines[2:]]


def test_the_markdown_table_has_one_row_per_code() -> None:
    rows = table_rows(render_codes_markdown().splitlines())
    assert [row[0] for row in rows] == [f"`{d.code}`" for d in DIAGNOSES]
    assert [row[3] for row in rows] == [f"`{d.callback_name}`" for d in DIAGNOSES]


def documented_callback_table() -> tuple[Path, list[list[str]], int] | None:
    """The documentation's table of callbacks (header cells 'callback' ... 'catches'), from README.md or docs/: its
    file, its rows' cells and the index of its 'catches' column."""
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        lines = path.read_text().splitlines()
        for index, line in enumerate(lines):
            header = cells(line)
            if line.startswith("|") and header[0] == "callback" and "catches" in header:
                table = list(itertools.takewhile(lambda row: row.startswith("|"), lines[index:]))
                return path, table_rows(table), header.index("catches")
    return None


def test_the_documented_callback_table_catches_the_registered_codes() -> None:
    found = documented_callback_table()
    assert found is not None, "no Markdown table with header cells 'callback' and 'catches' in README.md or docs/"
    path, rows, catches = found
    documented = {}
    for row in rows:
        codes = CODE.findall(row[catches])
        if codes:
            documented[row[0].strip("`")] = sorted(codes)
    assert documented == {name: sorted(codes) for name, codes in codes_by_callback().items()}, path
