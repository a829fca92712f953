"""Fault injection for tests and the failure zoo: make a failure happen at a chosen step.

These callbacks deliberately break a run; they belong in test configs and `experiments/zoo/`
overlays, never in a real training config.
"""

from __future__ import annotations

import functools
import math
import os
import signal

import lightning as L
import torch

NONFINITE_TARGETS = ("estimate", "loss_g", "loss_d")


class NonFiniteFault(L.Callback):
    """Make the generator output or a loss NaN on the given steps (batches).

    Args:
        steps: steps at which to inject.
        target: ``estimate`` (the generator output: both networks' steps see NaN), ``loss_g`` (one
            generator loss term) or ``loss_d`` (the discriminator loss).
    """

    def __init__(self, steps: list[int], target: str = "estimate") -> None:
        if target not in NONFINITE_TARGETS:
            raise ValueError(f"NonFiniteFault target must be one of {NONFINITE_TARGETS}, got {target!r}.")
        self.steps = set(steps)
        self.target = target

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        def poisoned(step: int) -> bool:
            return step in self.steps

        if self.target == "estimate":
            original = pl_module.generator_forward

            @functools.wraps(original)
            def generator_forward(batch):
                forward = original(batch)
                if poisoned(pl_module.global_step):
                    forward["estimate"] = forward["estimate"] * math.nan
                return forward

            pl_module.generator_forward = generator_forward
        elif self.target == "loss_g":
            original_g = pl_module.generator_loss

            @functools.wraps(original_g)
            def generator_loss(batch, forward, adversarial):
                terms, extra = original_g(batch, forward, adversarial)
                if poisoned(pl_module.global_step):
                    name = next(iter(terms))
                    terms[name] = terms[name] * math.nan
                return terms, extra

            pl_module.generator_loss = generator_loss
        else:
            original_d = pl_module.discriminator_loss

            @functools.wraps(original_d)
            def discriminator_loss(batch, forward):
                loss, extra = original_d(batch, forward)
                return (loss * math.nan if poisoned(pl_module.global_step) else loss), extra

            pl_module.discriminator_loss = discriminator_loss


class LossSpikeFault(L.Callback):
    """Multiply the generator output by ``scale`` on the given training steps (batches), as a bad batch would.

    Both networks' steps of those batches see the scaled output, so the generator's loss jumps for one batch (and
    the discriminator's, unless it normalises its input's level, as DAC's do) and comes back once the next batches
    are ordinary. Used by the failure zoo's ``loss_spike`` with the steps on logging batches (LossSpikes judges the
    logged values); LossSpikes should then report LOSS_SPIKE. Validation is left alone.

    Args:
        steps: the batches (``global_step``) whose output is scaled.
        scale: the factor, greater than 1. A log10-mel loss grows by its weight × its resolutions per decade of it
            (60 for codec_tiny's 15 × 4: 10^4 adds 200-240 to a generator loss of about 85).
    """

    def __init__(self, steps: list[int], scale: float = 1e4) -> None:
        if not steps or any(not isinstance(step, int) or step < 0 for step in steps):
            raise ValueError(f"LossSpikeFault steps must be a non-empty list of integers >= 0, got {steps!r}.")
        if not (math.isfinite(scale) and scale > 1):
            raise ValueError(f"LossSpikeFault scale must be a finite number greater than 1, got {scale!r}.")
        self.steps = set(steps)
        self.scale = scale

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        original = pl_module.generator_forward

        @functools.wraps(original)
        def generator_forward(batch):
            forward = original(batch)
            if pl_module.training and pl_module.global_step in self.steps:
                forward["estimate"] = forward["estimate"] * self.scale
            return forward

        pl_module.generator_forward = generator_forward


class RaiseAtStep(L.Callback):
    """Raise ``RuntimeError`` inside the training step of the given (0-based) batch."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        if trainer.global_step == self.step:
            raise RuntimeError(f"Injected failure at step {self.step}.")


class SignalAtStep(L.Callback):
    """Send this process a signal (SIGTERM by default) after the given step, as a scheduler would."""

    def __init__(self, step: int, signal_name: str = "SIGTERM") -> None:
        self.step = step
        self.signal_number = int(getattr(signal, signal_name))

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int
    ) -> None:
        if trainer.global_step == self.step and trainer.is_global_zero:
            os.kill(os.getpid(), self.signal_number)


class PerturbRankParameters(L.Callback):
    """Scale one rank's copy of a submodule's parameters by ``1 + scale * N(0, 1)`` before the given step (batch).

    DDP broadcasts the weights once, at the start, and then only all-reduces gradients, so after this the replicas
    stay apart for good, as after an optimizer step, a weight load or a buffer update taken on one rank only. Used by
    the failure zoo's ``rank_desync``; RankConsistency should then report RANK_DIVERGENCE. Does nothing on other ranks
    or in a single process with ``rank`` > 0.

    Args:
        rank: the global rank whose replica is perturbed.
        step: the batch (``trainer.global_step``) before which the perturbation happens.
        module: name of the LightningModule's child to perturb (``generator`` or ``discriminator``).
        scale: relative size of the perturbation (1e-3 changes each weight by about 0.1%).
    """

    def __init__(self, rank: int = 1, step: int = 10, module: str = "discriminator", scale: float = 1e-3) -> None:
        if rank < 0 or step < 0:
            raise ValueError(f"PerturbRankParameters rank and step must be >= 0, got rank={rank}, step={step}.")
        if not scale > 0:
            raise ValueError(f"PerturbRankParameters scale must be positive, got {scale!r}.")
        self.rank, self.step, self.module, self.scale = rank, step, module, scale

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        if trainer.global_rank != self.rank or trainer.global_step != self.step:
            return
        target = getattr(pl_module, self.module, None)
        if not isinstance(target, torch.nn.Module):
            children = [name for name, _ in pl_module.named_children()]
            raise ValueError(
                f"PerturbRankParameters module {self.module!r} is not one of the module's children {children}."
            )
        noise = torch.Generator().manual_seed(self.step)  # the same perturbation in every run
        with torch.no_grad():
            for parameter in target.parameters():
                factor = torch.randn(parameter.shape, generator=noise).to(parameter)
                parameter.mul_(1 + self.scale * factor)


class RaiseOnRank(L.Callback):
    """Raise ``RuntimeError`` on one rank only, at the start of the given (0-based) batch, as an OOM or an I/O
    error on one machine would.

    The other ranks carry on into the batch's first collective (a DDP wrapper's buffer broadcast or a gradient
    all-reduce) and wait there for the failed rank. Does nothing in a single process with ``rank`` > 0.

    Args:
        rank: the global rank that raises.
        step: the batch (``trainer.global_step``) at whose start it raises.
    """

    def __init__(self, rank: int = 1, step: int = 3) -> None:
        if rank < 0 or step < 0:
            raise ValueError(f"RaiseOnRank rank and step must be >= 0, got rank={rank}, step={step}.")
        self.rank, self.step = rank, step

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        if trainer.global_rank == self.rank and trainer.global_step == self.step:
            raise RuntimeError(f"Injected failure on rank {self.rank} at step {self.step}.")
