"""How GANModule steps its optimizers: one ``trainer.global_step`` per batch, non-finite steps skipped on the device.

Step counting. In manual optimization Lightning counts every ``LightningOptimizer.step()`` towards
``trainer.global_step`` (#17958), which with two optimizers doubles ``max_steps``, ``val_check_interval`` and
checkpoint intervals. codecgan counts one per batch without touching Lightning's counters: the generator's
optimizer steps through its ``LightningOptimizer`` (counted), the discriminator's through
``Strategy.optimizer_step`` (the same precision and AMP handling and the same ``on_before_optimizer_step`` hooks,
not counted). ``check_step_count`` verifies at every logging step that this still holds, so a Lightning release
that counts differently stops the run with a clear error instead of silently changing every schedule.

Skipping without a host read. A step whose gradients are not finite must leave the weights and the optimizer state
untouched. Optimizers that implement AMP's ``found_inf`` protocol (``fused=True`` Adam, AdamW, SGD, Adagrad, on
CUDA, CPU, MPS and XPU) take the decision as a device tensor and skip inside their kernel, so the host never waits.
Other optimizers need the decision on the host: their step reads one flag (a device sync), and a skipped step is
taken with no gradients, which every torch optimizer treats as "nothing to update".

fp16 (``precision: 16-mixed``). The gradients are unscaled (``GradScaler.unscale_``) before they are measured and
clipped, and every step, skipped or not, goes through ``GradScaler.step`` and ``update`` in Lightning's precision
plugin, so the scale backs off after an overflow. Lightning's plugin unscales a non-fused optimizer a second time,
so 16-mixed needs a fused optimizer (``require_device_skipping`` says so at start).
"""

from __future__ import annotations

from typing import Any

import lightning
import torch
from lightning.pytorch.core.optimizer import LightningOptimizer, do_nothing_closure
from packaging.version import Version
from torch import Tensor

from codecgan.config_error import ConfigError

# Lightning releases whose step counting GANModule was verified against (tests/test_step_counting.py).
TESTED_LIGHTNING = ("2.6",)


def lightning_is_tested() -> bool:
    release = Version(lightning.__version__).release[:2]
    return ".".join(map(str, release)) in TESTED_LIGHTNING


def skips_on_device(optimizer: torch.optim.Optimizer) -> bool:
    """Whether ``optimizer`` can skip a step on the device (AMP's ``found_inf`` protocol: fused optimizers)."""
    return bool(getattr(optimizer, "_step_supports_amp_scaling", False))


def grad_scaler(trainer: Any) -> torch.amp.GradScaler | None:
    """The precision plugin's GradScaler (``16-mixed``), or None."""
    return getattr(trainer.precision_plugin, "scaler", None)


def require_device_skipping(trainer: Any, optimizers: dict[str, torch.optim.Optimizer]) -> None:
    """Refuse, at start, a setting that cannot work: fp16 loss scaling with an optimizer that is not fused."""
    if grad_scaler(trainer) is None:
        return
    for name, optimizer in optimizers.items():
        if not skips_on_device(optimizer):
            raise ConfigError(
                f"precision 16-mixed needs optimizers that unscale and skip on the device, but {name} is "
                f"{type(optimizer).__name__} without fused kernels. Set "
                f"model.init_args.{name}.init_args.fused: true (torch.optim.AdamW, Adam or SGD), or use "
                "precision bf16-mixed, which needs no loss scaling."
            )


def unscale(trainer: Any, optimizer: LightningOptimizer) -> None:
    """Divide the gradients by the loss scale (fp16 only), so that they can be measured and clipped."""
    scaler = grad_scaler(trainer)
    if scaler is not None:
        scaler.unscale_(optimizer.optimizer)


def step(trainer: Any, optimizer: LightningOptimizer, skip: Tensor, counted: bool) -> None:
    """Step ``optimizer`` unless ``skip`` (a 0-dim bool tensor on the device) is true.

    ``counted``: whether the step advances ``trainer.global_step`` (the generator's, once per batch).
    """
    raw = optimizer.optimizer
    own_flag = skips_on_device(raw) and grad_scaler(trainer) is None  # under fp16 the GradScaler sets the flag
    if own_flag:
        raw.found_inf = skip.to(torch.float32)
    elif not skips_on_device(raw) and bool(skip):  # the one host read, for optimizers that cannot skip themselves
        raw.zero_grad(set_to_none=True)
    try:
        if counted:
            optimizer.step()
        else:
            trainer.strategy.optimizer_step(raw, do_nothing_closure, model=trainer.lightning_module)
    finally:
        if own_flag:
            del raw.found_inf


def check_step_count(trainer: Any, batches_this_fit: int, first_step: int) -> None:
    """Raise if ``trainer.global_step`` no longer advances by exactly one per batch (a Lightning change)."""
    expected = first_step + batches_this_fit
    if trainer.global_step != expected:
        tested = ", ".join(f"{release}.x" for release in TESTED_LIGHTNING)
        raise RuntimeError(
            f"trainer.global_step is {trainer.global_step} after {batches_this_fit} batches from step {first_step}, "
            f"not {expected}: Lightning {lightning.__version__} counts manual optimizer steps differently from the "
            f"releases codecgan was tested with ({tested}). Install a tested release (pip install 'lightning>=2.6,<2.7')."
        )
