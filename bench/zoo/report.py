"""The failure zoo's table: one row per overlay, as markdown (bench/results/zoo.md) and JSON (zoo.json)."""

from __future__ import annotations

import dataclasses
import datetime
import importlib.metadata
import json
import os
import platform
from pathlib import Path

from bench.zoo.entries import ZooEntry
from bench.zoo.results import ZooResult

COLUMNS = (
    ("overlay", "overlay"), ("steps", "steps"), ("expected", "expected"), ("found", "codes found (above info)"),
    ("detected", "detected"), ("latency", "latency (steps)"), ("false_alarms", "false alarms"),
    ("d_loss_to_chance", "D loss / chance"), ("confirm", "confirm"), ("wall_s", "wall (s)"),
)  # fmt: skip


def machine() -> str:
    """CPU model, cores this process may use, OS, Python and torch versions."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            names = [line.split(":", 1)[1].strip() for line in info if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    versions = f"Python {platform.python_version()}, torch {importlib.metadata.version('torch')}"
    return f"{cpu} ({cores} cores), {platform.system()} {platform.release()}, {versions}"


def table_row(entry: ZooEntry, result: ZooResult) -> dict[str, str]:
    """The row's cells as text."""
    detected, latency = result.detection()
    found = ", ".join(result.codes_above_info) or "none"
    if result.error:
        found += f"; run stopped: {result.error}"
    if detected is None:
        verdict = "—"
    else:
        verdict = "yes" if detected else "no"
    ratio = result.d_loss_to_chance
    return {
        "overlay": entry.name + (" (DDP ×2)" if entry.processes > 1 else ""),
        "steps": "—" if result.max_steps is None else str(result.max_steps),
        "expected": entry.expected or "(control)",
        "found": found,
        "detected": verdict,
        "latency": "—" if latency is None else str(latency),
        "false_alarms": "—" if not result.is_control else (", ".join(result.false_alarms) or "none"),
        "d_loss_to_chance": "—" if ratio is None else f"{ratio:.3f}",
        "confirm": result.confirm_verdict() if result.confirm_wall_s is not None else "—",
        "wall_s": f"{result.wall_s:.0f}" + ("" if result.confirm_wall_s is None else f" + {result.confirm_wall_s:.0f}"),
    }


def notes(entries: list[ZooEntry], results: dict[str, ZooResult]) -> list[str]:
    """What the table cannot say in a cell: faults not detected (with the discriminator's measured loss) and the
    evidence of every false alarm."""
    controls = {results[e.name].base: results[e.name] for e in entries if e.expected is None}
    lines = []
    for entry in entries:
        result = results[entry.name]
        detected, _ = result.detection()
        if detected is False:
            control = controls.get(result.base)
            ratio = "n/a" if result.d_loss_to_chance is None else f"{result.d_loss_to_chance:.3f}"
            healthy = (
                ""
                if control is None or control.d_loss_to_chance is None
                else (f" (the control's: {control.d_loss_to_chance:.3f})")
            )
            found = ", ".join(result.codes_above_info) or "nothing above info"
            lines.append(
                f"- `{entry.name}`: measured, {entry.expected} was not raised; the discriminator's loss was {ratio} of "
                f"its chance value in the last epoch{healthy}. Found instead: {found}."
            )
        for finding in result.findings if result.is_control else []:
            if finding["severity"] != "info":
                lines.append(f"- `{entry.name}` false alarm {finding['code']}: {finding['evidence']}")
        if result.live_alarms != sorted(result.codes_above_info):
            lines.append(
                f"- `{entry.name}`: the alarms active when its logs end ({', '.join(result.live_alarms) or 'none'}) "
                f"differ from its diagnosis above info ({', '.join(sorted(result.codes_above_info)) or 'none'})."
            )
    return lines


def live_equals_offline(entries: list[ZooEntry], results: dict[str, ZooResult]) -> str:
    """The sentence saying in how many runs the live alarms at the end equal `codecgan diagnose`'s findings above
    info (the callbacks and `diagnose` run the same rules with the same settings)."""
    same = sum(results[e.name].live_alarms == sorted(results[e.name].codes_above_info) for e in entries)
    return (
        f"Live = offline: in {same} of {len(entries)} runs the alarms active when the logs end (`diag/alarm/<CODE>` "
        "at 1) are the findings above `info` of `codecgan diagnose` on the same logs."
    )


def markdown_table(rows: list[dict[str, str]]) -> str:
    lines = ["| " + " | ".join(title for _, title in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row[key].replace("|", "/") for key, _ in COLUMNS) + " |" for row in rows]
    return "\n".join(lines)


def write_report(entries: list[ZooEntry], results: dict[str, ZooResult], total_s: float, directory: Path) -> str:
    """Write zoo.md and zoo.json into `directory`; return the markdown."""
    rows = [table_row(entry, results[entry.name]) for entry in entries]
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    where = machine()
    markdown = "\n".join(
        [
            "# The failure zoo",
            "",
            f"Made on {stamp} on {where}. `python -m bench.zoo` took {total_s / 60:.1f} min for {len(entries)} runs, at most "
            "two `codecgan fit` processes at a time with one thread each.",
            "",
            markdown_table(rows),
            "",
            "Latency: steps from the batch where the fault begins to the `first_step` of the expected finding. "
            "False alarms: the controls' findings above `info`. D loss / chance: the discriminator loss over that of the "
            "best constant output, median of the last epoch (a discriminator that learns is below 0.97). "
            "Confirm: the verdict of `codecgan confirm RUN --code <expected>` (2 seeds × control and treatment of the "
            "entry's confirm_steps, from the last checkpoint before the finding or fresh); for a control, what confirm "
            "finds to run. Wall: the fault run + its confirmation. "
            "Each run's findings, with their evidence, are in `zoo.json`; its key curve is in `zoo/<overlay>.png`.",
            "",
            live_equals_offline(entries, results),
            "",
            *(["Notes:", "", *notes(entries, results), ""] if notes(entries, results) else []),
            "Hypotheses (`experiments/zoo/<overlay>.yaml`):",
            "",
            *[f"- `{entry.name}`: {entry.hypothesis}" for entry in entries],
        ]
    )
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "zoo.md").write_text(markdown + "\n")
    payload = {
        "made": stamp,
        "machine": where,
        "total_wall_s": round(total_s, 1),
        "rows": rows,
        "runs": [dataclasses.asdict(results[entry.name]) for entry in entries],
    }
    (directory / "zoo.json").write_text(json.dumps(payload, indent=2) + "\n")
    return markdown
