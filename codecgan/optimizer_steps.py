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

Backward on one device. ``backward`` takes the gradients with ``torch.autograd.grad`` and stores them in each
trainable parameter's ``.grad``. ``loss.backward()`` gives the same values, but autograd's per-parameter accumulation
dispatches one op per parameter tensor (625 per batch at DAC size: weight norm gives each conv three tensors), and
``grad`` does not. Under DDP, whose reducers all-reduce from those accumulation hooks, it is ``loss.backward()``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import lightning
import torch
from lightning.pytorch.core.optimizer import LightningOptimizer, do_nothing_closure
from lightning.pytorch.strategies import SingleDeviceStrategy, Strategy
from lightning.pytorch.utilities import rank_zero_warn
from packaging.version import Version
from torch import Tensor, nn

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


def check_optimizers(trainer: Any, optimizers: dict[str, torch.optim.Optimizer]) -> None:
    """At the start of a fit: refuse what cannot work (``require_device_skipping``), and warn about each optimizer
    that needs a host read to skip a step and about a Lightning release whose step counting was not tested.
    ``optimizers``: by config key (``optimizer_g``, ``optimizer_d``)."""
    require_device_skipping(trainer, optimizers)
    slow = [name for name, optimizer in optimizers.items() if not skips_on_device(optimizer)]
    if slow:
        rank_zero_warn(
            f"{' and '.join(slow)} cannot skip a non-finite step on the device, so each of its steps waits for the "
            "device once to read the decision. Fused optimizers skip on the device: set "
            f"model.init_args.{slow[0]}.init_args.fused: true (torch.optim.AdamW, Adam or SGD)."
        )
    if not lightning_is_tested():
        rank_zero_warn(
            f"codecgan's step counting was tested with Lightning {', '.join(TESTED_LIGHTNING)}.x; "
            "this run checks it at every logging step and stops if Lightning counts differently."
        )


def unscale(trainer: Any, optimizer: LightningOptimizer) -> None:
    """Divide the gradients by the loss scale (fp16 only), so that they can be measured and clipped."""
    scaler = grad_scaler(trainer)
    if scaler is not None:
        scaler.unscale_(optimizer.optimizer)


def clip(
    trainer: Any, optimizer: LightningOptimizer, network: nn.Module, max_norm: float | None, device: torch.device
) -> tuple[Tensor, Tensor]:
    """The gradient norm of ``network`` before clipping and whether its step must be skipped (a non-finite norm),
    both on ``device``; the gradients clipped to ``max_norm`` (``None``: measured only). Under fp16 the gradients
    are unscaled first.

    The norm is computed once (foreach kernels) and reused for clipping. Clipping non-finite gradients makes them
    NaN, which does no harm: that step is skipped and the next backward starts from zero.
    """
    unscale(trainer, optimizer)
    parameters = [p for p in network.parameters() if p.grad is not None]
    if not parameters:
        return torch.zeros((), device=device), torch.zeros((), dtype=torch.bool, device=device)
    norm = torch.nn.utils.get_total_norm([p.grad for p in parameters])
    if max_norm is not None:
        torch.nn.utils.clip_grads_with_norm_(parameters, max_norm, norm)
    return (norm.detach() if norm.requires_grad else norm), ~torch.isfinite(norm)


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


def count_without_stepping(optimizer: LightningOptimizer) -> None:
    """Advance ``trainer.global_step`` by one as a step of ``optimizer`` would, without touching the weights or the
    optimizer state: the generator's batches of the discriminator warm-up. These are the hooks Lightning's manual
    loop gives ``optimizer.step()`` (verified by ``check_step_count``)."""
    optimizer._on_before_step()
    optimizer._on_after_step()


def backward(loss: Tensor, parameters: Iterable[Tensor], strategy: Strategy, *args: Any, **kwargs: Any) -> None:
    """Add the gradients of ``loss`` to the ``.grad`` of each of ``parameters`` that requires one: with
    ``accumulate_gradients`` on one device, with ``loss.backward(*args, **kwargs)`` under any other strategy or
    when arguments are given."""
    if args or kwargs or not isinstance(strategy, SingleDeviceStrategy):
        loss.backward(*args, **kwargs)
        return
    accumulate_gradients(loss, [p for p in parameters if p.requires_grad])


def accumulate_gradients(loss: Tensor, parameters: list[Tensor]) -> None:
    """Add the gradients of ``loss`` to the ``.grad`` of ``parameters`` (all of which require one) as
    ``loss.backward()`` would, values and memory layout alike, without an accumulation op per parameter tensor.
    A parameter ``loss`` does not depend on keeps its ``.grad``."""
    gradients = torch.autograd.grad(loss, parameters, allow_unused=True)
    for parameter, gradient in zip(parameters, gradients):
        if gradient is None:
            continue
        if gradient.stride() != parameter.stride():  # the layout autograd gives .grad: that of the parameter
            gradient = torch.empty_like(parameter).copy_(gradient)
        if parameter.grad is None:
            parameter.grad = gradient
        else:
            parameter.grad += gradient


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
