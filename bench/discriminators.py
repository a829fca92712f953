"""Forward + backward of DAC's discriminator set (MPD + multi-band STFT) on a batch of real and fake audio.

    python -m bench.discriminators                      # DAC size, batch 12 x 0.38 s at 44.1 kHz, ~2 min on an H100
    python -m bench.discriminators --batch 2 --seconds 0.2 --variants "fp32 eager,bf16 eager"   # CPU smoke run

Two passes, each what one optimizer step of the GAN loop asks of the discriminator:
- "D step": D(real) and D(fake) with the discriminator's parameters trainable, the least-squares loss, backward.
- "G side": D(real) without gradients, D(fake) with the fake audio requiring gradients and the discriminator's
  parameters frozen, adversarial + feature-matching loss, backward to the audio.
For the precision / compile / TF32 variants of `bench/precision_variants.py` (the optimizer is not involved);
also the relative error of each variant's losses against fp32 on the same weights and audio.
Writes the section `discriminators` of `bench/results/<device>.md`.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
import warnings
from pathlib import Path

import torch

from bench.precision_variants import VARIANTS, Variant, apply_tf32, dynamo_counts, reset_compiler
from bench.results_markdown import environment_line, write_section
from codecgan.losses import discriminator_loss, feature_matching_loss, generator_adversarial_loss
from codecgan.models import DACDiscriminator

ROOT = Path(__file__).resolve().parents[1]


def d_step(discriminator: torch.nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    for parameter in discriminator.parameters():
        parameter.requires_grad_(True)
        parameter.grad = None
    loss = discriminator_loss(discriminator(real), discriminator(fake))
    loss.backward()
    return loss.detach()


def g_side(discriminator: torch.nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    for parameter in discriminator.parameters():
        parameter.requires_grad_(False)
    fake = fake.detach().requires_grad_(True)
    real_outputs = discriminator(real)
    fake_outputs = discriminator(fake)
    loss = generator_adversarial_loss(fake_outputs) + 2.0 * feature_matching_loss(real_outputs, fake_outputs)
    loss.backward()
    return loss.detach()


def timed_ms(function, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            function()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            begin = time.perf_counter()
            function()
            times.append(1000 * (time.perf_counter() - begin))
    return times


def run_variant(variant: Variant, real: torch.Tensor, fake: torch.Tensor, warmup: int, steps: int) -> dict:
    reset_compiler()
    apply_tf32(variant.tf32)
    torch.manual_seed(0)
    discriminator = DACDiscriminator().to(real.device)
    if variant.compile:
        discriminator.compile(mode=variant.compile)
    autocast = (
        torch.autocast(real.device.type, dtype=torch.bfloat16)
        if variant.precision.startswith("bf16")
        else contextlib.nullcontext()
    )
    losses = {}
    result = {"variant": variant.name}
    for name, function in (("D step", d_step), ("G side", g_side)):

        def call() -> None:
            with autocast:
                losses[name] = function(discriminator, real, fake)

        compile_start = time.perf_counter()
        timed_ms(call, warmup)
        result[f"{name} warm-up s"] = time.perf_counter() - compile_start
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        result[name] = statistics.median(timed_ms(call, steps))
        result[f"{name} peak GiB"] = (
            torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")
        )
        result[f"{name} loss"] = float(losses[name])
    result["dynamo"] = dynamo_counts()
    return result


def report(results: list[dict], args: argparse.Namespace) -> str:
    base = results[0]
    lines = [
        "### discriminators: DAC's MPD + multi-band STFT set (42.5 M parameters)",
        "",
        environment_line() + ".",
        f"Real and fake audio {args.batch} × {args.seconds} s at {args.sample_rate} Hz; medians of {args.steps} passes "
        f"after {args.warmup} warm-up (ms). Loss error: |loss − fp32 loss| / fp32 loss on the same weights and audio.",
        "",
        f"| variant | D step | × {base['variant']} | G side | × {base['variant']} | peak GiB | D-step loss error | "
        "G-side loss error | warm-up s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        errors = [abs(r[f"{n} loss"] - base[f"{n} loss"]) / abs(base[f"{n} loss"]) for n in ("D step", "G side")]
        lines.append(
            f"| {r['variant']} | {r['D step']:.1f} | {base['D step'] / r['D step']:.2f} | {r['G side']:.1f} | "
            f"{base['G side'] / r['G side']:.2f} | {max(r['D step peak GiB'], r['G side peak GiB']):.2f} | "
            f"{errors[0]:.1e} | {errors[1]:.1e} | {r['D step warm-up s'] + r['G side warm-up s']:.0f} |"
        )
    for r in results:
        if "compile" in r["variant"]:
            lines.append(
                f"\n`{r['variant']}`: {r['dynamo']['graph_breaks']} graph breaks, "
                f"{r['dynamo']['unique_graphs']} compiled graphs."
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=0.38)
    parser.add_argument("--sample-rate", type=int, default=44100)
    parser.add_argument("--warmup", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument(
        "--variants", default=None, help="comma-separated names (default: all on a GPU, eager ones on a CPU)"
    )
    parser.add_argument(
        "--time-budget", type=float, default=None, help="seconds; variants not started by then are skipped"
    )
    parser.add_argument("--results-dir", default=None)
    args = parser.parse_args()
    began = time.perf_counter()
    warnings.filterwarnings("ignore")
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    names = args.variants.split(",") if args.variants else [v.name for v in VARIANTS if (cuda or not v.compile)]
    chosen = [next(v for v in VARIANTS if v.name == name.strip()) for name in names]
    generator = torch.Generator().manual_seed(0)
    samples = round(args.seconds * args.sample_rate)
    real = 0.3 * torch.randn(args.batch, 1, samples, generator=generator)
    fake = real + 0.05 * torch.randn(args.batch, 1, samples, generator=generator)  # a plausible reconstruction
    real, fake = real.clamp(-1, 1).to(device), fake.clamp(-1, 1).to(device)
    print(environment_line(), flush=True)
    results = []
    for variant in chosen:
        if args.time_budget is not None and time.perf_counter() - began > args.time_budget:
            print(f"skipped (time budget of {args.time_budget:.0f} s spent): {variant.name}", flush=True)
            continue
        try:
            results.append(run_variant(variant, real, fake, args.warmup, args.steps))
        except Exception as error:  # noqa: BLE001 -- report it and go on with the other variants
            print(f"{variant.name} failed: {type(error).__name__}: {str(error)[:300]}", flush=True)
            continue
        print(results[-1], flush=True)
        text = report(results, args)
        path = write_section(
            "discriminators", text, args.results_dir
        )  # after every variant: a cut run keeps its numbers
    print("\n" + text + f"\n\nwrote {path}")


if __name__ == "__main__":
    main()
