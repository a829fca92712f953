"""Phrases the wording of every finding shares: positions and percentages."""

from __future__ import annotations

from typing import Any, Mapping


def where(point: Mapping[str, Any]) -> str:
    """'epoch 6 (step 1200)', 'epoch 6' or 'step 1200' for a finding's {"epoch", "step"} position."""
    epoch, step = point.get("epoch"), point.get("step")
    if epoch is not None and step is not None:
        return f"epoch {epoch} (step {step})"
    if epoch is not None:
        return f"epoch {epoch}"
    if step is not None:
        return f"step {step}"
    return "an unnumbered round"


def percent(fraction: float) -> str:
    """0.183 -> '18%'; small fractions keep a decimal ('0.4%')."""
    value = 100.0 * fraction
    return f"{value:.1f}%" if abs(value) < 10 else f"{value:.0f}%"
