"""The checks on `GANModule`'s loop settings, run when the module is built: a bad value fails at start-up with
a `ConfigError` that names its `model.init_args` key, the value and what is allowed."""

from __future__ import annotations

from codecgan.config_error import ConfigError

SCHEDULER_INTERVALS = ("step", "epoch")


def check_loop_options(
    discriminator_start_step: int,
    discriminator_update_period: int,
    scheduler_interval: str,
    grad_clip_g: float | None,
    grad_clip_d: float | None,
) -> None:
    """Raise `ConfigError` for the first loop setting that cannot work."""
    if discriminator_start_step < 0:
        raise ConfigError(
            f"model.init_args.discriminator_start_step must be >= 0 (batches of generator-only warm-up), "
            f"got {discriminator_start_step}."
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
