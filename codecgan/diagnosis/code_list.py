"""The registry of diagnosis codes as a person reads it: `codecgan diagnose --list-codes` (text or JSON) and the
Markdown table of codes and the callbacks that raise them, for the documentation."""

from __future__ import annotations

import json

from codecgan.diagnosis.registry import DIAGNOSES, Diagnosis


def codes_by_callback(diagnoses: tuple[Diagnosis, ...] = DIAGNOSES) -> dict[str, list[str]]:
    """{callback class name: the codes it raises live}, callbacks in the order their first code is registered."""
    table: dict[str, list[str]] = {}
    for diagnosis in diagnoses:
        table.setdefault(diagnosis.callback_name, []).append(diagnosis.code)
    return table


def _confirm_text(diagnosis: Diagnosis) -> str:
    return f"no experiment: {diagnosis.without_experiment}" if diagnosis.without_experiment else "experiment"


def render_codes_json(diagnoses: tuple[Diagnosis, ...] = DIAGNOSES) -> str:
    """A JSON list with one object per code: code, description, family, severities ([lowest, highest]), callback,
    rule (its function's qualified name), experiment (whether `codecgan confirm` has one; without_experiment: why not)
    and zoo (its overlays' names; without_zoo: why there is none)."""
    entries = []
    for d in diagnoses:
        entry = {
            "code": d.code,
            "description": d.description,
            "family": d.family,
            "severities": list(d.severities),
            "callback": d.callback,
            "rule": f"{d.rule.__module__}.{d.rule.__name__}",
            "experiment": not d.without_experiment,
            "zoo": list(d.zoo),
        }
        if d.without_experiment:
            entry["without_experiment"] = d.without_experiment
        if d.without_zoo:
            entry["without_zoo"] = d.without_zoo
        entries.append(entry)
    return json.dumps(entries, indent=2, ensure_ascii=False)


def render_codes_text(diagnoses: tuple[Diagnosis, ...] = DIAGNOSES) -> str:
    """One line per code: code, severities, family, the callback that raises it live, and what it means."""
    rows = [("code", "severity", "family", "raised live by", "meaning")]
    rows += [(d.code, d.severity_range, d.family, d.callback_name, d.description) for d in diagnoses]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [f"codecgan diagnose: {len(diagnoses)} codes", ""]
    for row in rows:
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[4])
    return "\n".join(line.rstrip() for line in lines)


def render_codes_markdown(diagnoses: tuple[Diagnosis, ...] = DIAGNOSES) -> str:
    """A Markdown table, one row per code: code, severities, family, the callback that raises it live, its
    `codecgan confirm` experiment (or why there is none), its zoo overlays (or why there are none), and its meaning."""
    lines = [
        "| code | severity | family | raised live by | `codecgan confirm` | zoo overlay | meaning |",
        "|---|---|---|---|---|---|---|",
    ]
    for d in diagnoses:
        zoo = ", ".join(f"`{name}`" for name in d.zoo) if d.zoo else f"none: {d.without_zoo}"
        cells = [
            f"`{d.code}`",
            d.severity_range,
            d.family,
            f"`{d.callback_name}`",
            _confirm_text(d),
            zoo,
            d.description,
        ]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines)
