"""GANModule's settings fail at start-up with a ConfigError naming the key: the loop's options, and crops too short
for the discriminator."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from codecgan.config_error import ConfigError
from codecgan.loop_options import check_discriminator_takes, check_loop_options

GOOD = {
    "discriminator_start_step": 0,
    "discriminator_update_period": 1,
    "scheduler_interval": "step",
    "grad_clip_g": None,
    "grad_clip_d": 1.0,
}


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("discriminator_start_step", -1),
        ("discriminator_update_period", 0),
        ("scheduler_interval", "batch"),
        ("grad_clip_g", 0.0),
        ("grad_clip_d", -2.0),
    ],
)
def test_each_bad_loop_option_is_named_with_its_value(key: str, value) -> None:
    with pytest.raises(ConfigError, match=rf"model\.init_args\.{key} must .*got {value!r}"):
        check_loop_options(**{**GOOD, key: value})


def test_good_loop_options_pass() -> None:
    check_loop_options(**GOOD)


def test_a_crop_shorter_than_the_discriminators_kernel_is_named() -> None:
    discriminator = nn.Conv1d(1, 1, kernel_size=64)
    with pytest.raises(ConfigError, match=r"data\.crop_seconds gives 32-sample crops, too short .*Conv1d"):
        check_discriminator_takes(discriminator, 32, torch.device("cpu"))
    check_discriminator_takes(discriminator, 64, torch.device("cpu"))
