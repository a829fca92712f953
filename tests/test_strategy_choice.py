"""Several devices train with gan_ddp whatever the config says about the strategy: ``auto`` becomes gan_ddp, and
Lightning's DDP strategies are refused at start-up naming gan_ddp (the 2-process runs of both families, which
leave the strategy out, are in tests/test_ddp.py and tests/test_enhance_ddp.py)."""

from __future__ import annotations

import pytest
from lightning.pytorch.strategies import DDPStrategy

from codecgan.cli import main
from codecgan.config_error import ConfigError
from codecgan.ddp_strategy import GANDDPStrategy
from codecgan.strategy_choice import choose_strategy, device_count
from tests.conftest import EXPERIMENTS


@pytest.mark.parametrize(
    ("devices", "num_nodes", "expected"),
    [(2, 1, "gan_ddp"), ("2", 1, "gan_ddp"), ([0, 1], 1, "gan_ddp"), ("0,1", 1, "gan_ddp"), (1, 2, "gan_ddp")]
    + [(1, 1, "auto"), ("1", 1, "auto"), ("auto", 1, "auto"), ([3], 1, "auto")],
)
def test_auto_becomes_gan_ddp_on_more_than_one_device_or_node(devices, num_nodes: int, expected: str) -> None:
    assert choose_strategy("auto", devices, num_nodes, "cpu") == expected


@pytest.mark.parametrize("named", ["ddp", "ddp_find_unused_parameters_true", "ddp_spawn", DDPStrategy()])
def test_lightning_ddp_is_refused_naming_gan_ddp(named) -> None:
    with pytest.raises(ConfigError, match=r"Use trainer.strategy: gan_ddp"):
        choose_strategy(named, 2, 1, "cpu")


@pytest.mark.parametrize("named", ["gan_ddp", "single_device", "fsdp"])
def test_other_strategies_are_kept(named: str) -> None:
    assert choose_strategy(named, 2, 1, "cpu") == named
    strategy = GANDDPStrategy()
    assert choose_strategy(strategy, 2, 1, "cpu") is strategy


def test_auto_devices_on_cpu_are_one_process() -> None:
    assert device_count("auto", "cpu") == 1 and device_count(-1, "cpu") == 1


@pytest.mark.parametrize("config", ["codec_tiny.yaml", "enhance_tiny.yaml"])
def test_fit_with_lightning_ddp_ends_with_status_2_and_one_sentence(config: str, capsys) -> None:
    args = ["fit", "--config", str(EXPERIMENTS / config), "--trainer.accelerator", "cpu", "--trainer.devices", "2"]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--trainer.strategy", "ddp_find_unused_parameters_true", "--trainer.logger", "false"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "trainer.strategy 'ddp_find_unused_parameters_true'" in error and "Traceback" not in error


def test_runs_without_a_backward_may_use_lightning_ddp() -> None:
    assert choose_strategy("ddp", 2, 1, "cpu", training=False) == "ddp"
    assert choose_strategy("auto", 2, 1, "cpu", training=False) == "gan_ddp"
