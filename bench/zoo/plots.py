"""One small picture per failure-zoo run: its key curve next to the same curve of its family's control.

A dotted vertical line marks the step the fault begins, a dashed one the step the expected finding was first
seen. PNGs of about 30-60 KB (6.4 x 3.2 inches at 100 dpi), written with matplotlib's Agg backend.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from bench.zoo.entries import ZooEntry  # noqa: E402
from bench.zoo.results import ZooResult, read_history  # noqa: E402
from codecgan.diagnosis.history import MetricHistory  # noqa: E402

FIGURE_SIZE = (6.4, 3.2)
DPI = 100
# The rules' limits, drawn as horizontal lines next to the curve they judge.
THRESHOLDS = {
    "diag/d_loss_to_chance": ((0.97, "at-chance limit (97%)"), (0.1, "overpowering limit (10%)")),
    "diag/d_update_ratio": ((1e-6, "frozen floor (1e-6)"),),
    "diag/rank_param_spread/discriminator": ((1e-6, "tolerance (1e-6)"),),
    "diag/grad_share/loss_adv": ((0.01, "negligible share (1%)"),),
    "diag/pesq_none_rate": ((0.10, "warning rate (10%)"),),
    "val/snr_db": ((0.0, "0 dB"),),
    "val/amplitude_ratio": ((10 ** (-1 / 20), "±1 dB"), (10 ** (1 / 20), None)),
}


def series(history: MetricHistory | None, tag: str) -> tuple[list[int], list[float]]:
    """Steps and values of `tag` (non-finite values kept as gaps)."""
    points = [p for p in (history.series(tag) if history else []) if p.step is not None]
    return [p.step for p in points], [p.value if math.isfinite(p.value) else math.nan for p in points]


def draw(entry: ZooEntry, result: ZooResult, control: ZooResult | None, path: Path) -> None:
    """The key curve of `result` (and of `control`, dashed grey) with the fault and detection steps marked."""
    figure, axes = plt.subplots(figsize=FIGURE_SIZE, dpi=DPI)
    steps, values = series(read_history(Path(result.log_dir)), entry.curve)
    if control is not None and control.name != result.name:
        last = result.max_steps or (max(steps) if steps else 0)  # the control runs longer: its first steps only
        control_steps, control_values = series(read_history(Path(control.log_dir)), entry.curve)
        kept = [(s, v) for s, v in zip(control_steps, control_values) if s <= last]
        axes.plot(
            [s for s, _ in kept], [v for _, v in kept], "--", color="0.6", lw=1.2, marker=".", ms=3,
            label=f"{control.name} (control)",
        )  # fmt: skip
    axes.plot(steps, values, color="C3" if entry.expected else "C0", lw=1.6, marker=".", ms=4, label=entry.name)
    if entry.expected and entry.fault_step:
        axes.axvline(entry.fault_step, color="0.3", ls=":", lw=1, label=f"fault begins (step {entry.fault_step})")
    detected, latency = result.detection()
    if detected and latency is not None:
        step = entry.fault_step + latency
        axes.axvline(step, color="C3", ls="--", lw=1, label=f"{entry.expected} (step {step})")
    for level, text in THRESHOLDS.get(entry.curve, ()):
        axes.axhline(level, color="0.55", lw=0.8, ls="-.", label=text or "_nolegend_")
    if entry.curve.startswith("diag/rank_param_spread/"):
        axes.set_yscale("log")  # replicas agree to ~1e-12; the rule's tolerance is 1e-6
    if entry.curve.startswith("train/lr_"):
        axes.set_yscale("log")  # a vanished learning rate is many decades below its start
    if result.error and not steps:
        message = f"no {entry.curve}: the run stopped\n{result.error}"
        axes.text(0.5, 0.5, message, ha="center", va="center", fontsize=7, wrap=True, transform=axes.transAxes)
    if entry.expected:
        verdict = f"{entry.expected}: " + ("detected" if detected else "not detected")
    else:
        verdict = "control: " + (", ".join(result.false_alarms) or "nothing above info")
    axes.set_title(f"{entry.name} — {verdict}", fontsize=9)
    axes.set_xlabel("step (batches)", fontsize=8)
    axes.set_ylabel(entry.curve, fontsize=8)
    axes.tick_params(labelsize=7)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="best")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI)
    plt.close(figure)


def draw_all(entries: list[ZooEntry], results: dict[str, ZooResult], directory: Path) -> list[Path]:
    """One PNG per entry in `directory`; each is compared with the control run on the same base config."""
    controls = {results[e.name].base: results[e.name] for e in entries if e.expected is None and e.name in results}
    paths = []
    for entry in entries:
        result = results[entry.name]
        path = directory / f"{entry.name}.png"
        draw(entry, result, controls.get(result.base), path)
        paths.append(path)
    return paths
