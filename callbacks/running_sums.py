"""Named running sums, kept on the device between logging steps and reduced across ranks by summation.

Rates and means computed from these sums are exact under DDP: every rank adds its own counts, the sums are
all-reduced, and the division happens once, afterwards.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import torch
from lightning.pytorch import Trainer

from callbacks.distributed import reduce_sum


class RunningSums:
    """Float64 sums by name. Tensor terms stay on their device (no host sync per batch); Python numbers stay on
    the host."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)
        self._index = {name: i for i, name in enumerate(self.names)}
        self._device_values: torch.Tensor | None = None
        self._host_values = [0.0] * len(self.names)
        self._indices: dict[tuple[tuple[str, ...], torch.device], torch.Tensor] = {}

    def add(self, name: str, value: torch.Tensor | float) -> None:
        """Add a number or the sum of a tensor's elements to the sum called `name`."""
        index = self._index[name]
        if isinstance(value, torch.Tensor):
            if self._device_values is None:
                self._device_values = torch.zeros(len(self.names), dtype=torch.float64, device=value.device)
            elif self._device_values.device != value.device:  # restored on the CPU, now training on a GPU
                self._device_values = self._device_values.to(value.device)
            self._device_values[index] += value.detach().to(self._device_values.device, torch.float64).sum()
        else:
            self._host_values[index] += float(value)

    def add_finite(self, values: Mapping[str, torch.Tensor | float | None]) -> None:
        """For each scalar `values[name]` that is finite, add it to `name` and 1 to `name + "_n"` (None is skipped).

        The tensors are added together, in a handful of ops whatever their number: a per-batch call stays cheap.
        """
        names, tensors = [], []
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                names.append(name)
                tensors.append(value if value.dim() == 0 and not value.requires_grad else value.detach().reshape(()))
            elif value is not None and math.isfinite(float(value)):
                self.add(name, float(value))
                self.add(name + "_n", 1.0)
        if not tensors:
            return
        stacked = torch.stack(tensors).to(torch.float64)
        finite = stacked.isfinite()
        self._add_vector(names + [name + "_n" for name in names], torch.cat([stacked.where(finite, 0.0), finite]))

    def _add_vector(self, names: list[str], values: torch.Tensor) -> None:
        if self._device_values is None:
            self._device_values = torch.zeros(len(self.names), dtype=torch.float64, device=values.device)
        elif self._device_values.device != values.device:
            self._device_values = self._device_values.to(values.device)
        key = (tuple(names), values.device)
        if key not in self._indices:  # built once: a fresh index tensor would be a host-to-device copy per batch
            self._indices[key] = torch.tensor([self._index[name] for name in names], device=values.device)
        self._device_values.index_add_(0, self._indices[key], values.to(torch.float64))

    def local(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """This rank's sums as a float64 vector on `device` (a host sync when the sums live on a GPU)."""
        values = torch.tensor(self._host_values, dtype=torch.float64, device=device)
        if self._device_values is not None:
            values = values + self._device_values.to(device)
        return values

    def flush(self, trainer: Trainer) -> dict[str, float]:
        """All ranks' sums (a collective), then reset to zero."""
        device = self._device_values.device if self._device_values is not None else trainer.strategy.root_device
        totals = reduce_sum(trainer, self.local(device)).tolist()
        self.reset()
        return dict(zip(self.names, totals))

    def reset(self) -> None:
        self._device_values = None
        self._host_values = [0.0] * len(self.names)

    def state_dict(self) -> dict[str, Any]:
        """Host and device parts kept apart, so a restored sum continues with exactly the same rounding."""
        device = None if self._device_values is None else self._device_values.cpu()
        return {"names": list(self.names), "host": list(self._host_values), "device": device}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore saved sums. Sums saved under other names (a checkpoint from a codecgan version that measured
        something else) load as zeros when they are all zero, as they are between two flushes, and raise otherwise."""
        if tuple(state["names"]) != self.names:
            saved = [*state["host"], *([] if state["device"] is None else state["device"].tolist())]
            if not any(saved):
                self.reset()
                return
            raise ValueError(
                f"Saved running sums are named {state['names']}, but this callback keeps {list(self.names)}; "
                "the checkpoint was written mid-interval by a codecgan version that kept other sums."
            )
        self._host_values = [float(v) for v in state["host"]]
        self._device_values = None if state["device"] is None else state["device"].clone()
