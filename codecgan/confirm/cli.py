"""`codecgan confirm RUN [--code CODE ...] [--steps N] [--seeds K] [--devices D] [--json]`: run each finding's
confirmation experiment and print a verdict per finding.

For each finding of `codecgan diagnose RUN` above info (or each named code), the experiment registered for its
code (`codecgan.confirm.experiments`) trains a control arm (the run's config) and a treatment arm (the config with
the experiment's change) from the same checkpoint, with the same seed and data order, for K seeds; the decision
metric of the two arms gives the verdict (`codecgan.confirm.verdict`). Arms are ordinary runs under
`RUN/confirm/<code>/<arm>-seed<k>`, visible in TensorBoard next to the original and re-used on a second call.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from codecgan.confirm.arms import (
    CONFIRM_DIR,
    Arm,
    ConfirmError,
    arm_config,
    checkpoint_steps,
    devices_of,
    family_of,
    read_run_config,
    start_checkpoint,
)
from codecgan.confirm.experiments import EXPERIMENTS, WITHOUT_EXPERIMENT, Experiment
from codecgan.confirm.runner import run_arms
from codecgan.confirm.verdict import Verdict, decide, metric_value
from codecgan.diagnosis.findings import Finding
from codecgan.diagnosis.history import TENSORBOARD_EVENT_PREFIX, HistoryError, MetricHistory
from codecgan.diagnosis.report import diagnose_history


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="codecgan confirm",
        description="Run the experiment that confirms or refutes each finding of `codecgan diagnose RUN`.",
    )
    parser.add_argument("run", help="the log folder of a `codecgan fit` run (holding its events and config.yaml)")
    parser.add_argument("--code", action="append", default=[], help="confirm only this code (repeatable)")
    parser.add_argument("--steps", type=int, help="batches per arm (default: each experiment's own length)")
    parser.add_argument("--seeds", type=int, default=2, help="seeds per arm; their spread is the noise band (2)")
    parser.add_argument("--devices", type=int, default=1, help="arms run at once, one device each (1)")
    parser.add_argument("--json", action="store_true", help="print a JSON list of verdicts instead of a table")
    return parser


def confirm_main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.seeds < 1 or args.devices < 1 or (args.steps is not None and args.steps < 2):
        print("codecgan confirm: error: --seeds and --devices must be >= 1 and --steps >= 2.", file=sys.stderr)
        return 2
    try:
        verdicts = confirm(Path(args.run), args.code, args.steps, args.seeds, args.devices, report=progress)
    except (ConfirmError, HistoryError) as error:
        print(f"codecgan confirm: error: {error}", file=sys.stderr)
        return 2
    print(json.dumps([v.to_dict() for v in verdicts], indent=2) if args.json else render_table(verdicts))
    return 0


def progress(message: str) -> None:
    print(f"codecgan confirm: {message}", file=sys.stderr, flush=True)


def confirm(run: Path, codes: list[str], steps: int | None, seeds: int, devices: int, report=progress) -> list[Verdict]:
    """The verdicts for `run`'s findings above info, or for the findings of `codes`."""
    config = read_run_config(run)
    if not any(run.glob(f"{TENSORBOARD_EVENT_PREFIX}*")):
        raise ConfirmError(f"{run} holds no TensorBoard events ({TENSORBOARD_EVENT_PREFIX}*) to diagnose.")
    history = MetricHistory.from_tensorboard_run(str(run))
    findings = [f for f in diagnose_history(history) if (f.code in codes if codes else f.severity != "info")]
    verdicts = []
    for code in codes:
        if not any(f.code == code for f in findings):
            verdicts.append(Verdict(code, "—", "no finding", note=f"codecgan diagnose found no {code} in {run}"))
    if not findings:
        return verdicts
    family = family_of(config)
    checkpoints = checkpoint_steps(run, config)
    for finding in findings:
        experiments = EXPERIMENTS.get(finding.code, ())
        runnable = [e for e in experiments if e.changes_for(family)]
        if not runnable:
            reason = WITHOUT_EXPERIMENT.get(finding.code, f"no experiment is registered for the {family} family")
            verdicts.append(Verdict(finding.code, "—", "no experiment", note=reason))
            continue
        for experiment in runnable:
            verdict = run_experiment(
                run, finding, experiment, history, config, family, checkpoints, steps, seeds, devices, report
            )
            verdicts.append(verdict)
            if verdict.verdict == "confirmed":
                break
    return verdicts


def run_experiment(
    run, finding: Finding, experiment: Experiment, history, config, family, checkpoints, steps, seeds, devices, report
) -> Verdict:
    candidates = experiment.metrics_for(family)
    tag, direction = next(((t, d) for t, d in candidates if _logged(history, t)), candidates[0])
    start = start_checkpoint(checkpoints, _start_step(experiment, finding, history, tag, direction))
    length = steps or experiment.steps
    base_seed = int(config.get("seed_everything") or 0)
    folder = run / CONFIRM_DIR / finding.code
    start_name = start[1].name if start else "fresh"
    arms = {"control": [], "treatment": []}
    for k in range(seeds):
        seed = base_seed + k
        for label, changes in (("control", {}), ("treatment", experiment.changes_for(family))):
            # Controls are shared by a code's experiments when they start from the same checkpoint.
            name = f"control-{start_name.removesuffix('.ckpt')}" if label == "control" else experiment.slug
            arm_folder = folder / f"{name}-seed{seed}"
            arms[label].append(
                Arm(
                    finding.code,
                    label,
                    seed,
                    arm_folder,
                    arm_config(config, changes, arm_folder, seed, length, start),
                    devices_of(config),
                )
            )
    report(f"{finding.code}: {experiment.name}, {seeds} seed(s) × 2 arms of {length} steps from {start_name}")
    run_arms(arms["control"] + arms["treatment"], devices, report)
    controls = [metric_value(arm.folder, tag, experiment.transform) for arm in arms["control"]]
    treatments = [metric_value(arm.folder, tag, experiment.transform) for arm in arms["treatment"]]
    verdict, effect, noise, note = decide(controls, treatments, direction)
    return Verdict(
        code=finding.code,
        experiment=experiment.name,
        verdict=verdict,
        metric=tag + (" (|dB|)" if experiment.transform == "abs_db" else ""),
        direction=direction,
        control=_mean(controls),
        treatment=_mean(treatments),
        effect=effect,
        noise=noise,
        steps=length,
        start=str(start[1]) if start else "fresh (no checkpoint at or before the finding)",
        runs=[str(arm.folder) for arm in arms["control"] + arms["treatment"]],
        note=note,
    )


def _logged(history: MetricHistory, tag: str) -> bool:
    return bool(history.tags_with_prefix(tag[:-1])) if tag.endswith("*") else history.has(tag)


def _start_step(
    experiment: Experiment, finding: Finding, history: MetricHistory, tag: str, direction: str
) -> int | None:
    if experiment.start == "before_finding":
        return finding.first_step
    points = [p for p in history.series(tag) if math.isfinite(p.value)] if not tag.endswith("*") else []
    if not points:
        return finding.first_step
    best = max(points, key=lambda p: p.value if direction == "max" else -p.value)
    return best.step


def _mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan


def render_table(verdicts: list[Verdict]) -> str:
    if not verdicts:
        return "codecgan confirm: nothing to confirm (no finding above info)."
    header = ["code", "experiment", "verdict", "metric", "control", "treatment", "effect", "noise", "steps"]
    rows = [header]

    def number(x: float | None) -> str:
        return "—" if x is None or not math.isfinite(x) else f"{x:.4g}"

    for v in verdicts:
        metric = f"{v.metric} ({'higher' if v.direction == 'max' else 'lower'} is better)" if v.metric else "—"
        rows.append(
            [
                v.code,
                v.experiment,
                v.verdict,
                metric,
                number(v.control),
                number(v.treatment),
                number(v.effect),
                number(v.noise),
                str(v.steps or "—"),
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    notes = [f"- {v.code} ({v.experiment}): {v.note}" for v in verdicts if v.note]
    runs = [f"- {v.code} ({v.experiment}): {Path(v.runs[0]).parent}" for v in verdicts if v.runs]
    return "\n".join(lines + ([""] + ["Notes:"] + notes if notes else []) + ([""] + ["Runs:"] + runs if runs else []))
