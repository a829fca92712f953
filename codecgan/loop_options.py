"""The checks on `GANModule`'s settings: the loop's, when the module is built, and the crop length against the
discriminator, when fit starts. A bad value fails at start-up with a `ConfigError` that names its key, the value
and what is allowed."""

from __future__ import annotations

import torch
from torch import nn

from codecgan.config_error import ConfigError

SCHEDULER_INTERVALS = ("step", "epoch")


def check_loop_options(
    discriminator_start_step: int,
    discriminator_update_period: int,
    scheduler_interval: str,
    grad_clip_g: float | None,
    grad_clip_d: float | None,
    discriminator_warmup_steps: int = 0,
    ema_decay: float | None = None,
) -> None:
    """Raise `ConfigError` for the first loop setting that cannot work."""
    if discriminator_start_step < 0:
        raise ConfigError(
            f"model.init_args.discriminator_start_step must be >= 0 (batches of generator-only warm-up), "
            f"got {discriminator_start_step}."
        )
    if discriminator_warmup_steps < 0:
        raise ConfigError(
            f"model.init_args.discriminator_warmup_steps must be >= 0 (batches of discriminator-only warm-up), "
            f"got {discriminator_warmup_steps}."
        )
    if discriminator_warmup_steps and discriminator_start_step:
        raise ConfigError(
            f"model.init_args.discriminator_warmup_steps ({discriminator_warmup_steps}, the generator frozen) and "
            f"discriminator_start_step ({discriminator_start_step}, the discriminator idle) would leave both networks "
            "idle at the start: set one of them to 0."
        )
    if discriminator_update_period < 1:
        raise ConfigError(
            f"model.init_args.discriminator_update_period must be >= 1 (the discriminator steps on every "
            f"period-th batch), got {discriminator_update_period}."
        )
    if scheduler_interval not in SCHEDULER_INTERVALS:
        raise ConfigError(
            f"model.init_args.scheduler_interval must be one of {SCHEDULER_INTERVALS}, got {scheduler_interval!r}."
        )
    for name, value in (("grad_clip_g", grad_clip_g), ("grad_clip_d", grad_clip_d)):
        if value is not None and value <= 0:
            raise ConfigError(f"model.init_args.{name} must be a positive number or null, got {value}.")
    if ema_decay is not None and not 0 <= ema_decay < 1:
        raise ConfigError(
            f"model.init_args.ema_decay must be in [0, 1) (the old average's weight in each update, e.g. 0.999) "
            f"or null (no generator EMA), got {ema_decay}."
        )


def check_discriminator_takes(discriminator: nn.Module, crop: int, device: torch.device) -> None:
    """Raise `ConfigError` naming ``data.crop_seconds`` when ``discriminator`` cannot process ``crop``-sample
    crops (``[1, 1, crop]`` zeros, without gradients): a window or period longer than the crop fails here, not at
    the first training step."""
    try:
        with torch.no_grad():
            discriminator(torch.zeros(1, 1, crop, device=device))
    except RuntimeError as error:
        raise ConfigError(
            f"data.crop_seconds gives {crop}-sample crops, too short for the discriminator "
            f"({type(discriminator).__name__}) to process: {error}. Use longer crops or "
            "smaller discriminator windows/periods."
        ) from None
