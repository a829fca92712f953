"""Start a fresh run from another run's network weights (``model.init_args.init_from``).

Unlike resuming (``--ckpt_path``, ``codecgan.checkpoint_resolution``), only the weights are taken: optimizers,
schedulers and step counters start anew from this run's config, so a changed learning rate or loss weight applies.
``codecgan confirm`` starts each arm of an experiment this way from the run it diagnoses. A DAC model file (its
released ``weights.pth``) starts a codec run's generator alone, the discriminator fresh (``codecgan.dac_initialisation``).
A vocoder's released files (a Vocos ``pytorch_model.bin``, a HiFi-GAN ``g_XXXXXXXX``, a BigVGAN
``bigvgan_generator.pt``) start its generator, and the reference's discriminator file beside one, when there is one,
its discriminators (``codecgan.models.vocoder_checkpoints``).
"""

from __future__ import annotations

import os
import pickle

import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import nn

from codecgan.config_error import ConfigError
from codecgan.dac_initialisation import is_dac_weights, load_dac_generator
from codecgan.models.vocoder_checkpoints import load_vocoder_checkpoint, unrecognised_file, vocoder_checkpoint_format

CONFIG_KEY = "model.init_args.init_from"


def load_network_weights(
    networks: dict[str, nn.Module],
    checkpoint: str,
    sample_rate: int | None = None,
    mel_spectrogram: nn.Module | None = None,
) -> None:
    """Load each of ``networks`` (by name: ``generator``, ``discriminator``) from the ``state_dict`` entries
    ``<name>.*`` of the ``codecgan fit`` checkpoint file ``checkpoint``, or the generator alone from a DAC model file,
    checked against its settings and ``sample_rate`` (Hz; ``None``: not compared), or from a released vocoder file,
    checked against the generator, ``sample_rate`` and a vocoder's ``mel_spectrogram`` front-end. A ``ConfigError``
    names what is missing or does not fit."""
    if not os.path.isfile(checkpoint):
        raise ConfigError(f"{CONFIG_KEY}: no checkpoint file {checkpoint}.")
    try:
        loaded = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ConfigError(
            f"{CONFIG_KEY}: {checkpoint} holds objects other than tensors and plain values, which are not loaded "
            "unchecked (a codecgan checkpoint or a DAC weights.pth holds none)."
        ) from None
    if is_dac_weights(loaded):
        load_dac_generator(networks["generator"], loaded, checkpoint, sample_rate)
        return
    vocoder_format = vocoder_checkpoint_format(loaded)
    if vocoder_format is not None:
        summary = load_vocoder_checkpoint(networks, loaded, vocoder_format, checkpoint, sample_rate, mel_spectrogram)
        rank_zero_info(f"{CONFIG_KEY}: {summary}")
        return
    if "state_dict" not in loaded:
        raise unrecognised_file(checkpoint, loaded)
    state = loaded.get("state_dict", {})
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
