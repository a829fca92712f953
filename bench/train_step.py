"""Training-step throughput of a codecgan config: fp32, bf16-mixed, torch.compile and TF32, through the real loop.

    python -m bench.train_step --config experiments/codec_dac.yaml            # ~6 min on an H100
    python -m bench.train_step --config experiments/enhance_cmgan.yaml
    python -m bench.train_step --config experiments/codec_tiny.yaml --variants "fp32 eager,bf16 eager"   # CPU

Every variant builds the config's module afresh (same seed, same weights) and fits it with a Lightning Trainer
on `--warmup + --steps` cached synthetic batches (data generation is not timed), so each step is the real
`GANModule.training_step`: generator forward, discriminator step, generator step, clipping, schedulers,
logging. Throughput comes from the wall time of the timed steps (one host sync at each end of the window);
the split into generator forward / discriminator step / generator step comes from CUDA events recorded
around the module's three phases (no extra syncs). "other" is the rest of the step (schedulers, logging,
Lightning). Peak memory is the allocator's peak over the timed steps.

After the variant named by `--best` it also (a) fits that module again alternately without and with the
config's diagnostic callbacks (`callbacks.*`), and (b) profiles a few of its steps (top kernels), and, for
compiled variants, reports graph breaks and recompilations from `torch._dynamo`'s counters.
Writes the section `train_step <config>` of `bench/results/<device>.md` (`--results-dir` to change).
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, default_collate

from bench.precision_variants import (
    VARIANTS,
    Variant,
    apply_tf32,
    graph_break_reasons,
    reset_compiler,
)
from bench.profile_summary import profile_table
from bench.results_markdown import environment_line, write_section
from bench.step_clock import StepClock
from codecgan.lightning_cli import build_cli

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Measurement:
    variant: Variant
    audio_seconds_per_step: float
    seconds_per_step: float
    phases: dict[str, float]
    peak_gib: float
    dynamo: dict[str, int]
    dynamo_reasons: list[str] = field(default_factory=list)

    @property
    def audio_per_second(self) -> float:
        return self.audio_seconds_per_step / self.seconds_per_step


def build(config: str, variant: Variant, overrides: list[str]) -> tuple[L.LightningModule, Any, list[L.Callback]]:
    """The config's module (fresh, seeded), its data module and its diagnostic callbacks."""
    args = [
        "--config",
        config,
        "--trainer.logger",
        "false",
        "--trainer.strategy",
        "auto",
        "--trainer.devices",
        "1",
        "--data.init_args.train_dir",
        "null",
        "--data.init_args.val_dir",
        "null",
        "--data.init_args.test_dir",
        "null",
        *overrides,
    ]
    L.seed_everything(0, verbose=False)
    cli = build_cli(args, run=False)
    module = cli.model
    # Set the switch directly: every GANModule compiles in configure_model, whatever its subclass exposes.
    module.compile_mode = variant.compile
    diagnostics = [callback for callback in cli.trainer.callbacks if type(callback).__module__.startswith("callbacks.")]
    return module, cli.datamodule, diagnostics


def cached_batches(datamodule: Any, count: int, distinct: int = 4) -> list[dict[str, torch.Tensor]]:
    """`count` training batches cycling through `distinct` synthesized ones (synthesis is not timed)."""
    datamodule.setup("fit")
    dataset, size = datamodule.datasets["train"], datamodule.batch_size
    batches = [default_collate([dataset[b * size + i] for i in range(size)]) for b in range(distinct)]
    return [batches[i % distinct] for i in range(count)]


def fit(
    module: L.LightningModule, variant: Variant, batches: list, warmup: int, callbacks: list, scratch: Path
) -> StepClock:
    clock = StepClock(module, warmup)
    trainer = L.Trainer(
        accelerator="auto",
        devices=1,
        precision=variant.precision,
        max_steps=len(batches),
        limit_val_batches=0,
        logger=L.pytorch.loggers.TensorBoardLogger(str(scratch), name="tb", default_hp_metric=False),
        log_every_n_steps=50,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[clock, *callbacks],
        num_sanity_val_steps=0,
    )
    trainer.fit(module, train_dataloaders=DataLoader(batches, batch_size=None, shuffle=False))
    return clock


def measure(module, datamodule, variant: Variant, batches, warmup: int, scratch: Path) -> Measurement:
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    clock = fit(module, variant, batches, warmup, [], scratch)
    steps = len(batches) - warmup
    first = batches[0]
    audio = first["audio"] if "audio" in first else first["clean"]
    audio_seconds = audio.shape[0] * audio.shape[-1] / datamodule.sample_rate
    peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")
    dynamo = {key: clock.dynamo_at_end.get(key, 0) - clock.dynamo_at_start.get(key, 0) for key in clock.dynamo_at_end}
    dynamo.update({f"total_{key}": value for key, value in clock.dynamo_at_end.items()})
    return Measurement(variant, audio_seconds, clock.window_seconds / steps, clock.phase_ms(), peak, dynamo)


def callbacks_overhead(
    module, variant, batches, build_callbacks, repeats: int, scratch: Path
) -> list[tuple[float, float]]:
    """(seconds per step without, with the diagnostic callbacks), alternating fits of the same compiled module."""
    pairs = []
    for repeat in range(repeats):
        times = []
        for with_callbacks in (False, True):
            callbacks = build_callbacks() if with_callbacks else []
            module.term_gradient_interval = 0  # GradientBalance sets it; a fit without callbacks must not inherit it
            clock = fit(module, variant, batches, 2, callbacks, scratch / f"overhead{repeat}{with_callbacks}")
            times.append(clock.window_seconds / (len(batches) - 2))
        pairs.append((times[0], times[1]))
        print(
            f"  callbacks overhead, repeat {repeat + 1}: {1000 * times[0]:.1f} ms without, "
            f"{1000 * times[1]:.1f} ms with ({times[1] / times[0]:.3f} x)",
            flush=True,
        )
    return pairs


def results_table(results: list[Measurement]) -> str:
    baseline = results[0]
    phase_names = ["G forward", "D step", "G step", "other"]
    lines = [
        "| variant | audio-s/s | × "
        + baseline.variant.name
        + " | ms/step | "
        + " | ".join(phase_names)
        + " | peak GiB |",
        "|---|---:|---:|---:|" + "---:|" * len(phase_names) + "---:|",
    ]
    for result in results:
        phases = " | ".join(f"{result.phases.get(name, float('nan')):.1f}" for name in phase_names)
        lines.append(
            f"| {result.variant.name} | {result.audio_per_second:.2f} | "
            f"{result.audio_per_second / baseline.audio_per_second:.2f} | {1000 * result.seconds_per_step:.1f} | "
            f"{phases} | {result.peak_gib:.2f} |"
        )
    return "\n".join(lines)


def report(
    config: str, args: argparse.Namespace, results: list[Measurement], batch: int, overhead: list, profile: str
) -> str:
    markdown = [
        f"### train_step: `{config}`",
        "",
        environment_line() + ".",
        f"Batch of {batch} clips; {args.steps} timed steps after {args.warmup} warm-up. audio-s/s and ms/step "
        "from the wall time of the timed steps; the phases are medians on the GPU timeline (ms).",
        "",
        results_table(results),
    ]
    for result in (r for r in results if r.variant.compile):
        markdown.append(
            f"\n`{result.variant.name}`: {result.dynamo.get('total_graph_breaks', 0)} graph breaks and "
            f"{result.dynamo.get('total_unique_graphs', 0)} compiled graphs in the whole fit; "
            f"{result.dynamo.get('unique_graphs', 0)} compilations and {result.dynamo.get('graph_breaks', 0)} graph breaks "
            "during the timed steps." + "".join(f"\n- {reason}" for reason in result.dynamo_reasons)
        )
    if overhead:
        without = statistics.median(p[0] for p in overhead)
        with_callbacks = statistics.median(p[1] for p in overhead)
        markdown.append(
            f"\nDiagnostic callbacks (the config's `callbacks.*`, log_every_n_steps 50) on `{args.best}`: "
            f"{1000 * without:.1f} ms/step without, {1000 * with_callbacks:.1f} ms/step with, "
            f"**{100 * (with_callbacks / without - 1):+.1f}%** (median of {len(overhead)} alternating fits of "
            f"{args.overhead_steps} steps each, without/with: "
            + ", ".join(f"{1000 * a:.1f}/{1000 * b:.1f}" for a, b in overhead)
            + " ms)."
        )
    if profile:
        markdown += ["", f"`{args.best}`: " + profile]
    return "\n".join(markdown)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="experiments/codec_dac.yaml")
    parser.add_argument(
        "--variants", default=None, help="comma-separated names (default: all on a GPU, eager ones on a CPU)"
    )
    parser.add_argument("--warmup", type=int, default=6, help="untimed batches first (compilation happens here)")
    parser.add_argument("--steps", type=int, default=20, help="timed batches per variant")
    parser.add_argument("--best", default="bf16 compile + TF32", help="variant for the callback and profiler runs")
    parser.add_argument("--overhead-steps", type=int, default=60, help="timed batches per callbacks-overhead fit")
    parser.add_argument("--overhead-repeats", type=int, default=2, help="0 skips the callbacks-overhead fits")
    parser.add_argument("--profile-steps", type=int, default=3, help="0 skips the profile")
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        help="extra CLI arguments, e.g. --override=--data.init_args.batch_size=4",
    )
    parser.add_argument(
        "--time-budget", type=float, default=None, help="seconds; variants not started by then are skipped (and listed)"
    )
    parser.add_argument("--results-dir", default=None)
    args = parser.parse_args()
    began = time.perf_counter()
    warnings.filterwarnings("ignore")
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    cuda = torch.cuda.is_available()
    names = args.variants.split(",") if args.variants else [v.name for v in VARIANTS if cuda or not v.compile]
    chosen = [next(v for v in VARIANTS if v.name == name.strip()) for name in names]
    config = str(Path(args.config))
    print(environment_line(), flush=True)
    results: list[Measurement] = []
    overhead: list[tuple[float, float]] = []
    profile = ""
    batches: list = []
    failures: list[str] = []

    def save() -> None:  # after every variant, so a run cut short still leaves its numbers
        text = report(config, args, results, len(next(iter(batches[0].values()))), overhead, profile)
        text += "".join(f"\n\n{failure}" for failure in failures)
        print(f"wrote {write_section(f'train_step {config}', text, args.results_dir)}", flush=True)

    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        for variant in chosen:
            if args.time_budget is not None and time.perf_counter() - began > args.time_budget:
                print(f"skipped (time budget of {args.time_budget:.0f} s spent): {variant.name}", flush=True)
                continue
            reset_compiler()
            apply_tf32(variant.tf32)
            module, datamodule, _ = build(config, variant, args.override)
            batches = batches or cached_batches(datamodule, args.warmup + args.steps)
            try:
                result = measure(module, datamodule, variant, batches, args.warmup, scratch / variant.slug)
            except Exception as error:  # noqa: BLE001 -- report it and go on with the other variants
                failures.append(f"`{variant.name}` failed: {type(error).__name__}: {str(error)[:300]}")
                print(failures[-1], flush=True)
                module = None  # free its memory before the next variant
                continue
            result.dynamo_reasons = graph_break_reasons() if variant.compile else []
            results.append(result)
            print(
                f"{variant.name}: {result.audio_per_second:.2f} audio-s/s, {1000 * result.seconds_per_step:.1f} ms/step, "
                f"phases { ({k: round(v, 1) for k, v in result.phases.items()}) }, peak {result.peak_gib:.2f} GiB, "
                f"dynamo {result.dynamo} {result.dynamo_reasons}",
                flush=True,
            )
            save()
            if variant.name == args.best:
                try:
                    if args.profile_steps and cuda:
                        profile = profile_table(
                            lambda callbacks: fit(
                                module, variant, batches[: 2 + args.profile_steps], 2, callbacks, scratch / "profile"
                            ),
                            2,
                            args.profile_steps,
                        )
                        save()
                    if args.overhead_repeats:
                        overhead_batches = batches[:2] + [batches[2 + i % 4] for i in range(args.overhead_steps)]
                        overhead = callbacks_overhead(
                            module,
                            variant,
                            overhead_batches,
                            lambda: build(config, variant, args.override)[2],
                            args.overhead_repeats,
                            scratch,
                        )
                        save()
                except Exception as error:  # noqa: BLE001
                    failures.append(
                        f"callbacks/profile runs of `{variant.name}` failed: {type(error).__name__}: {str(error)[:300]}"
                    )
                    print(failures[-1], flush=True)
                    save()
            module = None
            if cuda:
                torch.cuda.empty_cache()
    print("\n" + report(config, args, results, len(next(iter(batches[0].values()))), overhead, profile), flush=True)
    # Exit now: after a fit that raised, something left a non-daemon thread behind (seen on the H100: the report was
    # printed and the process then hung until killed), and a benchmark must not hold a GPU machine idle.
    logging.shutdown()
    os._exit(1 if failures else 0)


if __name__ == "__main__":
    main()
