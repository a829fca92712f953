"""The failure zoo: each suspected cause of a failed GAN run, induced by one config overlay, and what
`codecgan diagnose` says about it.

    .venv/bin/python bench/zoo.py                                   # everything (make zoo)
    .venv/bin/python bench/zoo.py random_eval_crop healthy_codec    # a subset

Each overlay in experiments/zoo/ names its base config on its first line. Every overlay runs as its own
`codecgan fit` process within the step budget the overlay sets (at most --slots processes at once, each with
one intra-op thread; the DDP overlay takes one slot per rank), then `codecgan diagnose --json` reads its
TensorBoard directory. The table (printed, and written to bench/results/zoo.md and zoo.json by
bench/zoo_report.py) has one row per overlay: the code the fault should raise, the codes found above `info`,
whether the expected one was found, how many steps after the fault began it was first seen, the controls'
findings above `info` (false alarms), the discriminator's loss relative to its chance value, and the wall time.
An entry may first write what its run needs into the run's folder (`data_leak`'s audio folders), or run as a fit and
a resume from its checkpoint with changed arguments (`resume_discontinuity`), both in the same folder and TensorBoard
run. bench/zoo_plots.py draws each run's key curve next to its family's control in bench/results/zoo/<name>.png.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Callable

import soundfile
import yaml

ROOT = Path(__file__).resolve().parents[1]
for path in (str(ROOT), str(ROOT / "bench")):  # codecgan, and zoo_report / zoo_plots next to this file
    if path not in sys.path:
        sys.path.append(path)

from codecgan.data.synthetic_speech import derive_seed, synthesize_speech  # noqa: E402
from codecgan.diagnosis.history import HistoryError, MetricHistory, load_histories  # noqa: E402
from codecgan.diagnosis.report import alarms_at_end  # noqa: E402

ZOO_DIR = ROOT / "experiments" / "zoo"
RESULTS = ROOT / "bench" / "results"
RUNS = ROOT / "runs" / "zoo"
# A run far past its budget is hung (a DDP rank waiting for the other, say): it is stopped and reported.
RUN_TIMEOUT_S = 900
# Relative cost of a step, to start the longest runs first: the enhancer's step (with PESQ) is about twice the codec's.
STEP_COST = {"enhance_tiny.yaml": 2.0}


@dataclass(frozen=True)
class ZooEntry:
    """One overlay of experiments/zoo/ and what the zoo expects of it.

    expected: the finding code the fault should raise; None for a control (nothing above info expected).
    curve: the tag whose picture shows the fault.
    fault_step: the batch at which the fault begins (0: from the start); latency counts from here.
    processes: `codecgan fit` processes the run takes (DDP ranks), one slot each.
    extra_args: command-line overrides appended after the overlay (the smoke test shortens budgets).
    confirm_steps: the length of each `codecgan confirm` arm (its measurement must fall inside it).
    prepare: writes what the run needs into its folder before it starts (audio folders, say) and returns the
        command-line arguments that point the run at it.
    resume_at: fit to this step, then resume from the checkpoint saved there (`checkpoints/step<N>.ckpt`) to the
        budget with `resume_args` appended, as a user resumes a stopped run with an edited config.
    """

    name: str
    expected: str | None
    curve: str
    fault_step: int = 0
    processes: int = 1
    extra_args: tuple[str, ...] = ()
    confirm_steps: int = 60
    prepare: Callable[[Path], tuple[str, ...]] | None = None
    resume_at: int | None = None
    resume_args: tuple[str, ...] = ()

    @property
    def overlay(self) -> Path:
        return ZOO_DIR / f"{self.name}.yaml"

    @property
    def header(self) -> str:
        """The overlay's first line: '# base: <config> | hypothesis: <text>'."""
        return self.overlay.read_text().splitlines()[0]

    @property
    def base(self) -> Path:
        match = re.match(r"#\s*base:\s*(\S+)", self.header)
        if not match:
            raise ValueError(f"{self.overlay} must start with '# base: experiments/<config>.yaml | hypothesis: ...'.")
        return ROOT / match.group(1)

    @property
    def hypothesis(self) -> str:
        return self.header.split("hypothesis:", 1)[-1].strip()

    def max_steps(self) -> int:
        """The step budget: the last --trainer.max_steps override, else the overlay's."""
        args = self.extra_args
        overrides = [args[i + 1] for i, arg in enumerate(args[:-1]) if arg == "--trainer.max_steps"]
        if overrides:
            return int(overrides[-1])
        return int(yaml.safe_load(self.overlay.read_text())["trainer"]["max_steps"])

    def cost(self) -> float:
        return self.max_steps() * STEP_COST.get(self.base.name, 1.0)


# ------------------------------------------------------------------------------------------------ prepared data
SAMPLE_RATE = 16000  # codec_tiny's


def leaky_folders(run_dir: Path) -> tuple[str, ...]:
    """Write 20 training and 8 validation files of synthetic speech (1 s, 16 kHz, 16-bit WAV) under run_dir/data, 2 of
    the validation files byte copies of training files under other names; return the arguments that point the run's
    data at them."""
    train, val = run_dir / "data" / "train", run_dir / "data" / "val"
    for folder, prefix, count, seed in ((train, "utt", 20, 0), (val, "val", 6, 1)):
        folder.mkdir(parents=True)
        for index in range(count):
            audio = synthesize_speech(SAMPLE_RATE, SAMPLE_RATE, derive_seed(seed, index))
            soundfile.write(folder / f"{prefix}{index:02d}.wav", audio.numpy(), SAMPLE_RATE, subtype="PCM_16")
    for index in (3, 12):  # the leak
        shutil.copyfile(train / f"utt{index:02d}.wav", val / f"p287_{index:03d}.wav")
    return ("--data.init_args.train_dir", str(train), "--data.init_args.val_dir", str(val))


# Table order: the faults, then the controls.
ZOO: tuple[ZooEntry, ...] = (
    ZooEntry("random_eval_crop", "EVAL_NONDETERMINISTIC", "diag/eval_input_changed_fraction"),
    ZooEntry("pesq_drop_batch_silence", "PESQ_NONE_HIGH", "diag/pesq_none_rate"),
    ZooEntry("frozen_discriminator", "DISCRIMINATOR_FROZEN", "diag/d_update_ratio"),
    ZooEntry("starved_discriminator", "DISCRIMINATOR_AT_CHANCE", "diag/d_loss_to_chance"),
    ZooEntry("overpowering_discriminator", "DISCRIMINATOR_OVERPOWERING", "diag/d_loss_to_chance"),
    ZooEntry("grouped_conv_discriminator", "DISCRIMINATOR_AT_CHANCE", "diag/d_loss_to_chance"),
    ZooEntry("gan_weight_zero", "GAN_TERM_NEGLIGIBLE", "diag/grad_share/loss_adv"),
    ZooEntry("istft_length_mismatch", "LENGTH_MISMATCH", "diag/length_mismatch"),
    ZooEntry(
        "rank_desync",
        "RANK_DIVERGENCE",
        "diag/rank_param_spread/discriminator",
        fault_step=20,
        processes=2,
        confirm_steps=120,
    ),  # RankConsistency measures every 100 steps
    ZooEntry("nonfinite_loss", "NONFINITE_LOSS", "diag/nonfinite_loss_steps", fault_step=30),
    ZooEntry("lr_too_high", "NEGATIVE_SNR", "val/snr_db"),
    # The learning rates fall under 1e-3 of their initial values at step 20 (0.7**20 = 8e-4).
    ZooEntry("lr_vanished", "LR_VANISHED", "train/lr_g", fault_step=20),
    ZooEntry("data_leak", "DATA_LEAK", "diag/data_leak_files", prepare=leaky_folders),
    # LOSS_SPIKE warns at the third spike (step 84).
    ZooEntry("loss_spike", "LOSS_SPIKE", "train/loss_g", fault_step=54),
    ZooEntry(
        "resume_discontinuity",
        "RESUME_DISCONTINUITY",
        "train/loss_g",
        fault_step=100,
        resume_at=100,
        resume_args=("--model.init_args.loss_weights", "{mel: 150}"),  # codec_tiny's 15 ×10
    ),
    ZooEntry("healthy_codec", None, "val/amplitude_ratio"),
    ZooEntry("healthy_enhance", None, "val/pesq"),
)


@dataclass
class ZooResult:
    """One run: what happened and what the diagnosis found."""

    name: str
    base: str
    hypothesis: str
    expected: str | None
    fault_step: int
    max_steps: int | None
    exit_status: int | None
    wall_s: float
    log_dir: str
    findings: list[dict] = field(default_factory=list)
    error: str | None = None  # the last error line of a failed run
    d_loss_to_chance: float | None = None  # median of diag/d_loss_to_chance over the last epoch
    live_alarms: list[str] = field(default_factory=list)  # the alarms at 1 when the run's logs end
    confirm: list[dict] = field(default_factory=list)  # `codecgan confirm --json` of the run (expected code only)
    confirm_wall_s: float | None = None

    def confirm_verdict(self) -> str:
        """The expected code's verdict (the last experiment run); for a control, `no finding` or what confirm said."""
        if self.is_control:
            return ", ".join(f"{v['code']}: {v['verdict']}" for v in self.confirm) or "no finding"
        verdicts = [v for v in self.confirm if v["code"] == self.expected]
        return verdicts[-1]["verdict"] if verdicts else "not run"

    @property
    def codes_above_info(self) -> list[str]:
        return [f["code"] for f in self.findings if f["severity"] != "info"]

    @property
    def is_control(self) -> bool:
        return self.expected is None

    @property
    def false_alarms(self) -> list[str]:
        return self.codes_above_info if self.is_control else []

    def detection(self) -> tuple[bool | None, int | None]:
        """(detected, latency in steps after the fault began); (None, None) for a control."""
        if self.is_control:
            return None, None
        for finding in self.findings:
            if finding["code"] == self.expected and finding["severity"] != "info":
                step = finding["first_step"]
                return True, (None if step is None else step - self.fault_step)
        return False, None


# ------------------------------------------------------------------------------------------------ running
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


def read_history(log_dir: Path) -> MetricHistory | None:
    try:
        histories = load_histories(str(log_dir))
    except HistoryError:
        return None
    return histories[0][1] if histories else None


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="overlays to run (default: all)")
    parser.add_argument("--slots", type=int, default=2, help="processes at once (default 2)")
    parser.add_argument("--runs", type=Path, default=RUNS, help="where the run directories go (default runs/zoo)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where zoo.md, zoo.json and zoo/*.png go")
    parser.add_argument("--no-plots", action="store_true", help="skip the pictures")
    parser.add_argument("--no-confirm", action="store_true", help="skip `codecgan confirm` on each run")
    parser.add_argument(
        "--reuse-runs",
        action="store_true",
        help="diagnose the runs of the last `make zoo` again (after a rule changed) and re-use their finished confirm "
        "arms; exit statuses and wall times come from the last zoo.json. Only overlays it has no run of are trained",
    )
    args = parser.parse_args(argv)
    by_name = {entry.name: entry for entry in ZOO}
    unknown = [name for name in args.names if name not in by_name]
    if unknown:
        parser.error(f"unknown overlays {unknown}; choose from {sorted(by_name)}")
    entries = [by_name[name] for name in args.names] if args.names else list(ZOO)
    print(f"failure zoo: {len(entries)} runs, {args.slots} processes at a time, logs in {args.runs}", flush=True)
    start = time.monotonic()
    results = (
        reuse_runs(entries, args.runs, args.results, args.slots)
        if args.reuse_runs
        else run_all(entries, args.runs, args.slots)
    )
    if not args.no_confirm:
        confirm_all(entries, results, args.slots)
    total = time.monotonic() - start
    if args.reuse_runs:  # the runs' own time, from the zoo that trained them, plus this diagnosis
        total += json.loads((args.results / "zoo.json").read_text())["total_wall_s"]

    from zoo_report import write_report  # noqa: PLC0415 (imports this module back)

    markdown = write_report(entries, results, total, args.results)
    if not args.no_plots:
        from zoo_plots import draw_all  # noqa: PLC0415 (matplotlib only when drawing)

        draw_all(entries, results, args.results / "zoo")
    print()
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.modules.setdefault("zoo", sys.modules["__main__"])  # zoo_report and zoo_plots import this module as `zoo`
    raise SystemExit(main())
