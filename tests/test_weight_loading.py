"""load_network_weights (``model.init_args.init_from``): a checkpoint's generator.* and discriminator.* weights into
fresh networks, and a ConfigError naming the key for each way it cannot work."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from codecgan.config_error import ConfigError
from codecgan.weight_loading import load_network_weights


def networks(seed: int, discriminator_width: int = 3) -> dict[str, nn.Module]:
    torch.manual_seed(seed)
    return {"generator": nn.Linear(2, 4), "discriminator": nn.Linear(4, discriminator_width)}


def write_checkpoint(path: Path, state_dict: dict[str, torch.Tensor]) -> str:
    # As a codecgan fit checkpoint holds them, beside buffers and optimizer states that are not loaded.
    torch.save({"state_dict": state_dict, "optimizer_states": [{}], "global_step": 300}, path)
    return str(path)


def module_state(trained: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
    state = {f"{name}.{key}": value for name, net in trained.items() for key, value in net.state_dict().items()}
    return {**state, "nonfinite_steps": torch.tensor(2)}


def test_both_networks_take_the_checkpoints_weights(tmp_path: Path) -> None:
    trained = networks(seed=1)
    checkpoint = write_checkpoint(tmp_path / "step300.ckpt", module_state(trained))
    fresh = networks(seed=2)
    assert not torch.equal(fresh["generator"].weight, trained["generator"].weight)
    load_network_weights(fresh, checkpoint)
    for name in ("generator", "discriminator"):
        for key, value in trained[name].state_dict().items():
            assert torch.equal(fresh[name].state_dict()[key], value), f"{name}.{key}"


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"model.init_args.init_from: no checkpoint file .*absent.ckpt"):
        load_network_weights(networks(seed=0), str(tmp_path / "absent.ckpt"))


def test_a_checkpoint_without_discriminator_weights_is_named(tmp_path: Path) -> None:
    state = {key: value for key, value in module_state(networks(seed=1)).items() if key.startswith("generator.")}
    checkpoint = write_checkpoint(tmp_path / "generator_only.ckpt", state)
    with pytest.raises(ConfigError, match="model.init_args.init_from: .* holds no discriminator.\\* weights"):
        load_network_weights(networks(seed=0), checkpoint)


def test_weights_of_another_architecture_are_refused_naming_the_network(tmp_path: Path) -> None:
    checkpoint = write_checkpoint(tmp_path / "wide.ckpt", module_state(networks(seed=1, discriminator_width=5)))
    with pytest.raises(ConfigError, match="the discriminator weights in .* do not fit this run's discriminator"):
        load_network_weights(networks(seed=0), checkpoint)
