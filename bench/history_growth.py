"""Does a run of weeks stay flat? Host memory and checkpointed diagnostic state over a long simulated run.

    .venv/bin/python -m bench.history_growth [--steps 400000] [--log-every 10] [--val-every 100] [--write]

Drives every shipped diagnostic callback that records during training through its hooks (no Lightning loop, no
model: a fake step whose outputs carry every value the callbacks read), logging every `--log-every` batches and
validating every `--val-every` as the tiny configs do, and prints at five evenly spaced steps the process RSS
(VmRSS), the size of each callback's `state_dict` as `torch.save` writes it (what every checkpoint carries) and the
number of history points each keeps; then the growth of each per 100k steps over the last quarter of the run.
`--write` saves the table to `bench/results/history_growth.md` with the commit it was measured at.
"""

from __future__ import annotations

import argparse
import io
import math
import time
import warnings
from pathlib import Path

import torch

from bench.results_markdown import commit
from callbacks import (
    CodebookUsage,
    DiscriminatorHealth,
    DivergenceMonitor,
    EvalDeterminism,
    GradientBalance,
    LearningRateHealth,
    LossSpikes,
    MetricDiscriminatorMonitor,
    PesqHealth,
    ResumeContinuity,
    SignalStats,
)
from callbacks.base import DiagnosticCallback
from tests.callbacks.callback_fakes import FakeModule, FakeTrainer, validation_round

RESULTS = Path(__file__).resolve().parent / "results" / "history_growth.md"
PER = 100_000
GRADIENT_EVERY = 50  # GradientBalance every_n_steps
EPOCH_STEPS = 1_000  # batches per epoch: epoch-end hooks run and the epoch axis moves


class LoggingModule(FakeModule):
    """The fake module, keeping only each name's latest logged value, as Lightning's ``callback_metrics`` does:
    ``FakeModule`` records every call for the tests' assertions, which over a long run would measure the fake's
    own memory instead of the callbacks'."""

    def __init__(self) -> None:
        super().__init__()
        self.latest: dict[str, float] = {}

    def log(self, name: str, value: float, **kwargs: object) -> None:
        self.latest[name] = float(value)


def make_callbacks() -> list[DiagnosticCallback]:
    return [
        DiscriminatorHealth(),
        DivergenceMonitor(metric="val/pesq", mode="max"),
        LossSpikes(),
        ResumeContinuity(),
        LearningRateHealth(),
        PesqHealth(),
        MetricDiscriminatorMonitor(),
        GradientBalance(every_n_steps=GRADIENT_EVERY),
        CodebookUsage(window_steps=100),
        SignalStats(),
        EvalDeterminism(),
    ]


class FakeOptimizer:
    """An ExponentialLR-style schedule: the learning rate changes at every batch, the worst case for a history that
    keeps a learning rate only when it changes."""

    def __init__(self, lr: float) -> None:
        self.param_groups = [{"lr": lr}]


def train_output(step: int, noise: float) -> dict:
    """A healthy step: losses that fall slowly with noise, a discriminator near but below chance; the term gradients
    every GRADIENT_EVERY batches and the codes of every batch, as the modules report them."""
    level = 1.0 + 1.0 / math.sqrt(step + 1.0)
    value = lambda scale: torch.tensor(scale * level * (1.0 + 0.05 * noise))  # noqa: E731
    return {
        "loss": value(10.0),
        "losses": {
            "loss_g": value(10.0),
            "loss_d": value(1.0),
            "loss_fm": value(2.0),
            "loss_adv": value(1.5),
            "loss_mel": value(5.0),
        },
        "d_stepped": True,
        "d_real": torch.tensor(0.6),
        "d_fake": torch.tensor(0.4),
        "d_loss_chance": 2.0,
        "grad_norm_d": torch.tensor(0.3),
        "d_update_ratio": 1e-3,
        "pesq_dropped_batch": 0,
        "pesq_clips": 4,
        "pesq_failed_clips": 0,
        "metric_d_prediction": torch.tensor([0.2, 0.4, 0.6, 0.8]) + 0.01 * noise,
        "pesq_target": torch.tensor([0.2, 0.4, 0.6, 0.8]),
        "term_grad_norms": (
            {"loss_mel": torch.tensor(5.0), "loss_adv": torch.tensor(1.0)} if step % GRADIENT_EVERY == 0 else {}
        ),
        "codes": torch.arange(40).remainder(8).reshape(2, 2, 10),
        "codebook_size": 8,
    }


def validation_outputs(round_: int) -> list[dict]:
    audio = torch.sin(torch.arange(64.0) / 3.0).reshape(1, 1, 64).repeat(2, 1, 1)
    estimate = audio * (0.98 + 0.01 * math.sin(round_))
    return [
        {
            "index": torch.tensor([0, 1]),
            "input": audio,
            "reference": audio,
            "estimate": estimate,
            "length": torch.full((2,), 64),
            "pesq": torch.tensor([3.0, 3.2]),
            "metric_d_prediction": torch.tensor([0.57, 0.63]),
        }
    ]


def state_bytes(callback: DiagnosticCallback) -> int:
    buffer = io.BytesIO()
    torch.save(callback.state_dict(), buffer)
    return buffer.tell()


def history_points(callback: DiagnosticCallback) -> int:
    return sum(len(points) for points in callback.history.state_dict()["series"].values())


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def measure(callbacks: list[DiagnosticCallback], step: int, seconds: float) -> dict:
    return {
        "step": step,
        "seconds": seconds,
        "rss": rss_bytes(),
        "state": {type(c).__name__: state_bytes(c) for c in callbacks},
        "points": {type(c).__name__: history_points(c) for c in callbacks},
    }


def simulate(steps: int, log_every: int, val_every: int, marks: int = 4) -> list[dict]:
    callbacks = make_callbacks()
    optimizers = [FakeOptimizer(2e-4), FakeOptimizer(2e-4)]
    trainer = FakeTrainer(log_every_n_steps=log_every, optimizers=optimizers, callbacks=callbacks)
    module = LoggingModule()
    for callback in callbacks:
        if hasattr(callback, "on_fit_start"):
            callback.on_fit_start(trainer, module)
    noise = torch.Generator().manual_seed(0)
    noises = torch.randn(steps, generator=noise).tolist()
    start, rows = time.process_time(), [measure(callbacks, 0, 0.0)]
    for step in range(steps):
        output = train_output(step, noises[step])
        for callback in callbacks:
            callback.on_train_batch_end(trainer, module, output, None, step % EPOCH_STEPS)
        for optimizer in optimizers:
            optimizer.param_groups[0]["lr"] *= 0.99999
        trainer.advance()
        trainer.strategy.decisions.clear()  # the fake strategy records every decision for the tests
        if (step + 1) % val_every == 0:
            round_ = (step + 1) // val_every
            trainer.callback_metrics = {"val/pesq": torch.tensor(3.0 + 0.1 * math.tanh(round_ / 50.0))}
            for callback in callbacks:
                validation_round(callback, trainer, module, validation_outputs(round_))
        if (step + 1) % EPOCH_STEPS == 0:
            for callback in callbacks:
                if hasattr(callback, "on_train_epoch_end"):
                    callback.on_train_epoch_end(trainer, module)
            trainer.current_epoch += 1
        if (step + 1) % (steps // marks) == 0:
            rows.append(measure(callbacks, step + 1, time.process_time() - start))
            print(f"step {step + 1}: {rows[-1]['rss'] / 2**20:.1f} MiB RSS, {rows[-1]['seconds']:.0f} s", flush=True)
    return rows


def table(rows: list[dict]) -> str:
    names = list(rows[0]["state"])
    per = PER / (rows[-1]["step"] - rows[-2]["step"])

    def growth(key: str, name: str | None = None) -> float:
        last, before = (rows[-1][key], rows[-2][key]) if name is None else (rows[-1][key][name], rows[-2][key][name])
        return (last - before) * per

    head = "| step | " + " | ".join(f"{r['step']:,}" for r in rows) + " | growth per 100k steps (last quarter) |"
    lines = [head, "|---|" + "---:|" * (len(rows) + 1)]
    lines.append(
        "| RSS (MiB) | " + " | ".join(f"{r['rss'] / 2**20:.1f}" for r in rows) + f" | {growth('rss') / 2**20:+.1f} |"
    )
    total = [sum(r["state"].values()) for r in rows]
    lines.append(
        "| all state_dicts (KiB) | "
        + " | ".join(f"{t / 1024:.0f}" for t in total)
        + f" | {(total[-1] - total[-2]) * per / 1024:+.0f} |"
    )
    for name in names:
        cells = " | ".join(f"{r['state'][name] / 1024:.0f} / {r['points'][name]:,}" for r in rows)
        lines.append(
            f"| {name}: state KiB / points | {cells} | "
            f"{growth('state', name) / 1024:+.0f} KiB / {growth('points', name):+,.0f} |"
        )
    lines.append("| CPU seconds | " + " | ".join(f"{r['seconds']:.0f}" for r in rows) + " | |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=400_000)
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--val-every", type=int, default=100)
    parser.add_argument("--write", action="store_true", help=f"save the table to {RESULTS}")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")  # alarms of the scripted run are not what is measured
    torch.set_num_threads(1)
    rows = simulate(args.steps, args.log_every, args.val_every)
    markdown = (
        f"{args.steps:,} batches, logging every {args.log_every}, validating every {args.val_every}, "
        f"{EPOCH_STEPS:,} batches per epoch; commit {commit()}.\n\n{table(rows)}\n"
    )
    print(markdown)
    if args.write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(
            "# History growth over a long run\n\nMade by `python -m bench.history_growth --write` "
            "(see its docstring).\n\n" + markdown
        )


if __name__ == "__main__":
    main()
