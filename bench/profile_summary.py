"""Where a training step's GPU time goes: torch.profiler over a few steps, summarised by kernel and by kind."""

from __future__ import annotations

import re
import time
from typing import Callable

import lightning as L
import torch
from torch.profiler import ProfilerActivity, profile

# First match wins; the kinds a reader needs to decide what to speed up.
KERNEL_KINDS = (
    ("optimizer (AdamW)", r"adam|multi_tensor_apply"),
    ("FFT (STFT, mel)", r"fft"),
    ("Triton (compiled, fused)", r"^triton_"),
    ("convolution (cuDNN/CUTLASS)", r"conv|xmma|cudnn|implicit|dgrad|wgrad|fprop|sm90_|nhwc|nchw"),
    ("matmul (cuBLAS)", r"gemm|cutlass|cublas|sm80_|ampere_"),
    ("eager elementwise/reduction", r"elementwise|reduce|vectorized|unrolled|index|cat|copy|fill|pad|where"),
    ("memcpy/memset", r"memcpy|memset"),
)


def kernel_kind(name: str) -> str:
    lowered = name.lower()
    return next((kind for kind, pattern in KERNEL_KINDS if re.search(pattern, lowered)), "other")


class ProfiledSteps(L.Callback):
    """Profiles the batches from `start` to the last one, synchronising at both ends."""

    def __init__(self, start: int) -> None:
        self.start = start
        self.profiler: profile | None = None
        self.wall_seconds = float("nan")

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == self.start:
            torch.cuda.synchronize()
            self.profiler = profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA])
            self.profiler.__enter__()
            self._wall = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx == trainer.max_steps - 1 and self.profiler is not None:
            torch.cuda.synchronize()
            self.wall_seconds = time.perf_counter() - self._wall
            self.profiler.__exit__(None, None, None)


def profile_table(run_fit: Callable[[list], object], start: int, steps: int, top: int = 12) -> str:
    """Markdown: GPU busy time against wall time, time by kernel kind, and the top kernels, per step."""
    probe = ProfiledSteps(start)
    run_fit([probe])
    kernels = [
        event
        for event in probe.profiler.key_averages()
        if event.device_type == torch.autograd.DeviceType.CUDA
        and event.self_device_time_total > 0
        # record_function ranges (e.g. "Optimizer.step#AdamW.step") also show on the GPU row; they are spans, not kernels
        and not getattr(event, "is_user_annotation", False)
        and "#" not in event.key
    ]
    total_us = sum(event.self_device_time_total for event in kernels)
    wall_ms = 1000 * probe.wall_seconds / steps
    busy_ms = total_us / 1000 / steps
    kinds: dict[str, float] = {}
    for event in kernels:
        kind = kernel_kind(event.key)
        kinds[kind] = kinds.get(kind, 0.0) + event.self_device_time_total / 1000 / steps
    lines = [
        f"Profile of {steps} steps (torch.profiler, so a little slower than above): {wall_ms:.1f} ms wall per step, "
        f"GPU kernels busy {busy_ms:.1f} ms ({100 * busy_ms / wall_ms:.0f}%), {len(kernels)} distinct kernels.",
        "",
        "| kernel kind | ms/step | share of GPU time |",
        "|---|---:|---:|",
    ]
    for kind, ms in sorted(kinds.items(), key=lambda item: -item[1]):
        lines.append(f"| {kind} | {ms:.1f} | {100 * ms / busy_ms:.0f}% |")
    lines += ["", "| top kernels | calls/step | ms/step | share |", "|---|---:|---:|---:|"]
    for event in sorted(kernels, key=lambda e: -e.self_device_time_total)[:top]:
        ms = event.self_device_time_total / 1000 / steps
        name = event.key if len(event.key) <= 90 else event.key[:87] + "..."
        name = name.replace("|", "/")
        lines.append(f"| `{name}` | {event.count / steps:.0f} | {ms:.2f} | {100 * ms / busy_ms:.1f}% |")
    return "\n".join(lines)
