"""Load DAC (descript-audio-codec) checkpoints into codecgan's `CodecGenerator` and `DACDiscriminator`.

DAC saves a model as `{"state_dict": ..., "metadata": {"kwargs": {...}}}` (audiotools' `BaseModel.save` with
`package=False`, the format of its released `weights.pth` files and of its training folders'
`dac/weights.pth` and `discriminator/weights.pth`); `kwargs` are the arguments of `DAC(...)`. The layers are
the same as codecgan's (`tests/models/test_dac_reference.py` proves the outputs equal against a fixture written
by DAC's own code), but the names differ in two ways:

- weight norm: DAC uses the old `torch.nn.utils.weight_norm` (`weight_g`, `weight_v`), codecgan the
  parametrization (`parametrizations.weight.original0`, `parametrizations.weight.original1`), same values;
- module paths: DAC wraps its sequences in `block`/`model` attributes and its discriminator convolutions in
  `Sequential(conv, LeakyReLU)`; codecgan's sequences are the modules themselves and apply the activation in
  `forward`.

Usage:

    generator = CodecGenerator.from_dac_checkpoint("weights.pth")  # built with the checkpoint's hyperparameters
    load_dac_generator_weights(generator, read_dac_checkpoint("weights.pth").state_dict)  # into a built one
    discriminator = discriminator_from_dac_checkpoint("discriminator/weights.pth")

A key that has no counterpart, a parameter left unset and a shape that differs all raise a `ValueError` naming
them. One behaviour differs on purpose: for odd decoder strides (DAC's 16 kHz model has a 5), DAC's decoder
loses a sample per such block and codecgan's does not (`DecoderBlock`), so their outputs agree except in the last
few hundred samples.

Reading and renaming live in `codecgan.models.dac_checkpoint_format`, which imports no model, so that
`CodecGenerator.from_dac_checkpoint` can use it; this module builds the models on it and offers its names too.
"""

from __future__ import annotations

from os import PathLike
from typing import Any, Mapping

from torch import Tensor

from codecgan.models.dac_checkpoint_format import (
    DACCheckpoint,
    codec_generator_kwargs,
    discriminator_key,
    generator_key,
    load_dac_generator_weights,
    load_dac_weights,
    read_dac_checkpoint,
)
from codecgan.models.dac_codec import CodecGenerator
from codecgan.models.discriminators import DACDiscriminator

__all__ = [
    "DACCheckpoint",
    "codec_generator_kwargs",
    "discriminator_from_dac_checkpoint",
    "discriminator_key",
    "generator_from_dac_checkpoint",
    "generator_key",
    "load_dac_discriminator_weights",
    "load_dac_generator_weights",
    "load_dac_weights",
    "read_dac_checkpoint",
]


def load_dac_discriminator_weights(discriminator: DACDiscriminator, dac_state_dict: Mapping[str, Tensor]) -> None:
    """Copy a DAC discriminator's weights (`Discriminator.state_dict()`) into `discriminator`."""
    n_periods = len(discriminator.mpd.discriminators)
    load_dac_weights(discriminator, dac_state_dict, lambda key: discriminator_key(key, n_periods))


def generator_from_dac_checkpoint(source: str | PathLike | Mapping[str, Any], **overrides: Any) -> CodecGenerator:
    """`CodecGenerator.from_dac_checkpoint(source, **overrides)`."""
    return CodecGenerator.from_dac_checkpoint(source, **overrides)


def discriminator_from_dac_checkpoint(source: str | PathLike | Mapping[str, Any], **overrides: Any) -> DACDiscriminator:
    """A `DACDiscriminator` holding a DAC discriminator's weights, built with `overrides` over the metadata.

    DAC's `Discriminator` keeps no attributes for its arguments, so the metadata audiotools saves always holds
    their defaults (DAC's published configuration): pass `periods` and `window_lengths` if the model was trained
    with others. The weights fix how many periods and windows there are, not their values.
    """
    checkpoint = read_dac_checkpoint(source)
    if checkpoint.kwargs.get("rates"):
        raise ValueError(
            f"The checkpoint's discriminator has MSDs at rates {checkpoint.kwargs['rates']}; codecgan's "
            "DACDiscriminator has none (DAC's published configs use none)."
        )
    arguments = {"periods": "periods", "fft_sizes": "window_lengths", "bands": "bands", "sample_rate": "sample_rate"}
    kwargs = {arguments[key]: value for key, value in checkpoint.kwargs.items() if key in arguments}
    discriminator = DACDiscriminator(**{**kwargs, **overrides})
    load_dac_discriminator_weights(discriminator, checkpoint.state_dict)
    return discriminator
