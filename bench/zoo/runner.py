"""Running the zoo: each entry as `codecgan fit` processes (at most `slots` at once, one intra-op thread each),
diagnosed with `codecgan diagnose --json` as it ends, then checked with `codecgan confirm`."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from bench.zoo.entries import ROOT, ZooEntry
from bench.zoo.results import ZooResult, read_history
from codecgan.diagnosis.report import alarms_at_end

# A run far past its budget is hung (a DDP rank waiting for the other, say): it is stopped and reported.
RUN_TIMEOUT_S = 900


def fit_command(entry: ZooEntry, runs: Path) -> list[str]:
    """`codecgan fit` on the overlay's base and the overlay, logging to runs/<name>."""
    return [
        sys.executable, "-m", "codecgan", "fit",
        "--config", str(entry.base), "--config", str(entry.overlay),
        "--trainer.logger.init_args.save_dir", str(runs),
        "--trainer.logger.init_args.name", entry.name,
        "--trainer.default_root_dir", str(runs / entry.name),
        *entry.extra_args,
    ]  # fmt: skip


def fit_commands(entry: ZooEntry, runs: Path, data_args: tuple[str, ...] = ()) -> list[list[str]]:
    """The `codecgan fit` commands of a run, one after another: one, or the fit to `resume_at` and the resume from
    its checkpoint to the budget."""
    command = [*fit_command(entry, runs), *data_args]
    if entry.resume_at is None:
        return [command]
    checkpoint = runs / entry.name / "checkpoints" / f"step{entry.resume_at}.ckpt"
    return [
        [*command, "--trainer.max_steps", str(entry.resume_at)],
        [*command, *entry.resume_args, "--ckpt_path", str(checkpoint)],
    ]


def single_thread_env() -> dict[str, str]:
    # Two processes with two intra-op threads each on 2 cores run ~20x slower than with one thread each.
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


@dataclass
class _Running:
    entry: ZooEntry
    process: subprocess.Popen
    start: float
    log: IO[str]
    pending: list[list[str]]  # the commands still to run after this one (a resume)


def run_all(entries: list[ZooEntry], runs: Path, slots: int = 2, echo: bool = True) -> dict[str, ZooResult]:
    """Run the entries, at most `slots` processes at a time, and diagnose each as it ends.

    DDP runs start first (they need every slot), then the rest from the most to the least expensive, so the long
    runs overlap the short ones.
    """
    queue = sorted(entries, key=lambda entry: (-entry.processes, -entry.cost()))
    running: dict[str, _Running] = {}
    results: dict[str, ZooResult] = {}
    while queue or running:
        busy = sum(job.entry.processes for job in running.values())
        if queue and busy + min(queue[0].processes, slots) <= slots:
            entry = queue.pop(0)
            running[entry.name] = start_run(entry, runs)
            if echo:
                print(f"  started  {entry.name} ({entry.max_steps()} steps, {entry.processes} process(es))", flush=True)
            continue
        time.sleep(0.5)
        for name, job in list(running.items()):
            if job.process.poll() is None and time.monotonic() - job.start < RUN_TIMEOUT_S:
                continue
            if job.process.returncode == 0 and job.pending:
                job.process = launch(job.pending.pop(0), job.log)
                continue
            if job.process.poll() is None:
                os.killpg(job.process.pid, signal.SIGKILL)  # the group this run was started in
                job.process.wait()
            job.log.close()
            del running[name]
            results[name] = collect(job.entry, runs, job.process.returncode, time.monotonic() - job.start)
            if echo:
                result = results[name]
                found = ", ".join(result.codes_above_info) or "nothing above info"
                print(f"  finished {name} in {result.wall_s:.0f} s (exit {result.exit_status}): {found}", flush=True)
    return results


def start_run(entry: ZooEntry, runs: Path) -> _Running:
    shutil.rmtree(runs / entry.name, ignore_errors=True)  # fit refuses to start over an earlier run's checkpoints
    (runs / entry.name).mkdir(parents=True)
    start = time.monotonic()
    data_args = entry.prepare(runs / entry.name) if entry.prepare else ()
    log = open(runs / entry.name / "fit.log", "w")
    first, *pending = fit_commands(entry, runs, data_args)
    return _Running(entry, launch(first, log), start, log, pending)


def launch(command: list[str], log: IO[str]) -> subprocess.Popen:
    """Start one `codecgan fit`, its output appended to the run's log."""
    return subprocess.Popen(
        command, cwd=ROOT, env=single_thread_env(), stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: a timeout stops the DDP ranks with it
    )  # fmt: skip


def collect(entry: ZooEntry, runs: Path, exit_status: int, wall_s: float) -> ZooResult:
    """Diagnose a finished run with `codecgan diagnose --json` and read what the table needs."""
    log_dir = runs / entry.name
    result = ZooResult(
        entry.name, str(entry.base.relative_to(ROOT)), entry.hypothesis, entry.expected, entry.fault_step,
        entry.max_steps(), exit_status, wall_s, str(log_dir),
    )  # fmt: skip
    diagnosis = subprocess.run(
        [sys.executable, "-m", "codecgan", "diagnose", str(log_dir), "--json"],
        cwd=ROOT, env=single_thread_env(), capture_output=True, text=True,
    )  # fmt: skip
    if diagnosis.returncode == 0:
        result.findings = json.loads(diagnosis.stdout)
    history = read_history(log_dir)
    if exit_status != 0:
        output = (log_dir / "fit.log").read_text(errors="replace")
        lines = [line.strip() for line in output.splitlines() if line.strip()]
        errors = [line for line in lines if re.match(r"^[\w.]*(Error|Exception)\b", line)]
        result.error = (errors or lines or ["no output"])[-1]
    result.live_alarms = sorted(alarms_at_end(history)) if history else []
    rounds = history.per_epoch("diag/d_loss_to_chance") if history else []
    result.d_loss_to_chance = rounds[-1].value if rounds else None
    return result


def reuse_runs(
    entries: list[ZooEntry], runs: Path, results_dir: Path, slots: int = 2, echo: bool = True
) -> dict[str, ZooResult]:
    """The results of the last zoo's runs, diagnosed again with today's rules; the entries it has no run of (not in
    its zoo.json, or no run folder) are run now."""
    previous = json.loads((results_dir / "zoo.json").read_text())
    earlier = {run["name"]: run for run in previous["runs"]}
    missing = [entry for entry in entries if entry.name not in earlier or not (runs / entry.name).is_dir()]
    if missing and echo:
        print(f"  no earlier run of {[entry.name for entry in missing]}: running them", flush=True)
    results = run_all(missing, runs, slots, echo) if missing else {}
    for entry in entries:
        if entry.name in results:
            continue
        result = collect(entry, runs, earlier[entry.name]["exit_status"], earlier[entry.name]["wall_s"])
        result.confirm_wall_s = earlier[entry.name].get("confirm_wall_s")  # the arms' training, re-used below
        results[entry.name] = result
    return results


def confirm_all(entries: list[ZooEntry], results: dict[str, ZooResult], slots: int, echo: bool = True) -> None:
    """`codecgan confirm` on each run, one after another with `slots` arms at once: a fault for its expected code,
    a control for every finding above info (none expected)."""
    for entry in entries:
        result = results[entry.name]
        codes = ["--code", entry.expected] if entry.expected else []
        start = time.monotonic()
        completed = subprocess.run(
            [sys.executable, "-m", "codecgan", "confirm", result.log_dir, *codes, "--steps", str(entry.confirm_steps),
             "--seeds", "2", "--devices", str(slots), "--json"],
            cwd=ROOT, env=single_thread_env(), capture_output=True, text=True,
        )  # fmt: skip
        result.confirm_wall_s = (result.confirm_wall_s or 0.0) + time.monotonic() - start
        if completed.returncode == 0:
            result.confirm = json.loads(completed.stdout)
        else:
            lines = [line for line in completed.stderr.splitlines() if line.strip()]
            result.confirm = [{"code": entry.expected or "-", "verdict": f"failed: {(lines or ['?'])[-1]}"}]
        if echo:
            print(f"  confirmed {entry.name} in {result.confirm_wall_s:.0f} s: {result.confirm_verdict()}", flush=True)
