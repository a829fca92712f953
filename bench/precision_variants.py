"""The precision and compilation variants every benchmark compares, and the switches they flip.

"fp32" is strict IEEE fp32 (TF32 off for both matmuls and cuDNN convolutions; note that PyTorch's own default
lets cuDNN convolutions use TF32). "+ TF32" turns TF32 on for both. bf16 variants are Lightning's
`bf16-mixed` (autocast; fp32 weights and optimizer states).

The optimizer is the config's (fused AdamW: it skips a non-finite step on the device, so the step never waits for
the host). "reduce-overhead" is `compile: reduce-overhead`, which also captures each network's forward and
backward as CUDA graphs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Variant:
    name: str
    precision: str  # Lightning's precision argument
    compile: str | None = None  # GANModule's compile mode
    tf32: bool = False

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")


VARIANTS = (
    Variant("fp32 eager", "32-true"),
    Variant("fp32 eager + TF32", "32-true", tf32=True),
    Variant("bf16 eager", "bf16-mixed"),
    Variant("bf16 compile", "bf16-mixed", compile="default"),
    Variant("bf16 compile + TF32", "bf16-mixed", compile="default", tf32=True),
    Variant("fp32 + TF32 reduce-overhead", "32-true", compile="reduce-overhead", tf32=True),
    Variant("bf16 reduce-overhead + TF32", "bf16-mixed", compile="reduce-overhead", tf32=True),
)


def apply_tf32(enabled: bool) -> None:
    """TF32 for fp32 matmuls and cuDNN convolutions, on or off (the legacy flags, which Lightning also reads)."""
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled


def reset_compiler() -> None:
    """Forget compiled code between variants, so each variant compiles for its own settings and no variant
    inherits another's cache entries (nn.Module.compile shares one code object, `_call_impl`, across modules)."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()  # reset() keeps them; each variant counts its own graphs and breaks
    torch._dynamo.config.recompile_limit = 64
    torch._dynamo.config.accumulated_recompile_limit = 1024


def dynamo_counts() -> dict[str, int]:
    """Graphs compiled and graph breaks so far in this process (torch._dynamo's counters)."""
    from torch._dynamo.utils import counters

    return {
        "unique_graphs": int(counters["stats"]["unique_graphs"]),
        "graph_breaks": int(sum(counters["graph_break"].values())),
    }


def graph_break_reasons(limit: int = 5) -> list[str]:
    """The most frequent graph-break reasons so far, with their counts."""
    from torch._dynamo.utils import counters

    reasons = sorted(counters["graph_break"].items(), key=lambda item: -item[1])[:limit]
    return [f"{count}× {reason[:160]}" for reason, count in reasons]
