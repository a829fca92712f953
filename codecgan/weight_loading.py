"""Start a fresh run from another run's network weights (``model.init_args.init_from``).

Unlike resuming (``--ckpt_path``, ``codecgan.checkpoint_resolution``), only the weights are taken: optimizers,
schedulers and step counters start anew from this run's config, so a changed learning rate or loss weight applies.
``codecgan confirm`` starts each arm of an experiment this way from the run it diagnoses.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from codecgan.config_error import ConfigError

CONFIG_KEY = "model.init_args.init_from"


def load_network_weights(networks: dict[str, nn.Module], checkpoint: str) -> None:
    """Load each of ``networks`` (by name: ``generator``, ``discriminator``) from the ``state_dict`` entries
    ``<name>.*`` of the ``codecgan fit`` checkpoint file ``checkpoint``; a ``ConfigError`` names what is missing or
    does not fit."""
    if not os.path.isfile(checkpoint):
        raise ConfigError(f"{CONFIG_KEY}: no checkpoint file {checkpoint}.")
    state = torch.load(checkpoint, map_location="cpu", weights_only=True).get("state_dict", {})
    for name, network in networks.items():
        weights = {key[len(name) + 1 :]: value for key, value in state.items() if key.startswith(name + ".")}
        if not weights:
            raise ConfigError(f"{CONFIG_KEY}: {checkpoint} holds no {name}.* weights.")
        try:
            network.load_state_dict(weights)
        except RuntimeError as error:
            raise ConfigError(
                f"{CONFIG_KEY}: the {name} weights in {checkpoint} do not fit this run's {name} "
                f"(a different architecture in the config?): {str(error).splitlines()[0]}"
            ) from None
