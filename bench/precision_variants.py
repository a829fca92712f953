"""The precision and compilation variants every benchmark compares, and the switches they flip.

"fp32" is strict IEEE fp32 (TF32 off for both matmuls and cuDNN convolutions; note that PyTorch's own default
lets cuDNN convolutions use TF32). "+ TF32" turns TF32 on for both. bf16 variants are Lightning's
`bf16-mixed` (autocast; fp32 weights and optimizer states).

The optimizer is the config's (AdamW, foreach). Fused AdamW does not run through the real loop: Lightning's
MixedPrecision plugin refuses `clip_gradients` for any optimizer that handles gradient scaling itself
(lightning/pytorch/plugins/precision/amp.py), and GANModule clips through Lightning. The "fused AdamW, own
clipping" variants measure the proposed fix: GANModule clips with the norm it has already computed
(`torch._foreach_mul_`, the same arithmetic as `clip_grad_norm_`), so the optimizer may be fused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Variant:
    name: str
    precision: str  # Lightning's precision argument
    compile: bool = False
    tf32: bool = False
    fused_adamw: bool = False  # implies the module clips its own gradients (see the module docstring)

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")


VARIANTS = (
    Variant("fp32 eager", "32-true"),
    Variant("fp32 eager + TF32", "32-true", tf32=True),
    Variant("bf16 eager", "bf16-mixed"),
    Variant("bf16 eager + fused AdamW (own clipping)", "bf16-mixed", fused_adamw=True),
    Variant("bf16 compile", "bf16-mixed", compile=True),
    Variant("bf16 compile + TF32", "bf16-mixed", compile=True, tf32=True),
    Variant("bf16 compile + TF32 + fused AdamW (own clipping)", "bf16-mixed", compile=True, tf32=True, fused_adamw=True),
)


def clip_with_own_norm(module: Any) -> None:
    """Replace `module._clip` by the proposed version: the pre-clip norm is computed once (foreach) and the
    gradients are scaled by `min(1, max_norm / (norm + 1e-6))` on the device, exactly as `clip_grad_norm_` does,
    instead of calling Lightning's `clip_gradients` (which recomputes the norm and refuses fused optimizers)."""

    def _clip(optimizer: Any, network: torch.nn.Module, value: float | None) -> tuple[torch.Tensor, bool]:
        grads = [p.grad for p in network.parameters() if p.grad is not None]
        if not grads:
            return torch.zeros((), device=module.device), True
        norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads, dtype=torch.float32)))
        finite = bool(torch.isfinite(norm))
        if finite and value is not None:
            torch._foreach_mul_(grads, torch.clamp(value / (norm + 1e-6), max=1.0))
        return norm.detach(), finite

    module._clip = _clip


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
