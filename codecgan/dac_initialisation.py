"""Start a codec run from a released DAC model: ``model.init_args.init_from: weights.pth``.

DAC publishes its generators (16, 24 and 44.1 kHz) as ``weights.pth`` files in its own format
(``codecgan.models.dac_checkpoint``) and no discriminator (descript-audio-codec#26). A run started from such a file
takes the generator's weights from it and starts the discriminator fresh; ``GANModule``'s
``discriminator_warmup_steps`` then trains the discriminator alone for a while, so that the generator's first steps
learn from a discriminator that already tells the released model's audio from real audio.

The configured generator must be the file's model: the settings ``DAC(...)`` was built with (recorded in the file,
DAC's defaults where absent) and its sample rate are compared with the config's before anything is loaded, and one
``ConfigError`` names every one that differs, with both values. ``quantizer_dropout`` is not compared: DAC's save
records its default whatever the model trained with, so the config's applies (DAC's final models used 0.5).
"""

from __future__ import annotations

import inspect
from typing import Any, Mapping

from lightning.pytorch.utilities import rank_zero_info
from torch import nn

from codecgan.config_error import ConfigError
from codecgan.models.dac_checkpoint_format import (
    GENERATOR_ARGUMENTS,
    codec_generator_kwargs,
    load_dac_generator_weights,
    read_dac_checkpoint,
)
from codecgan.models.dac_codec import CodecGenerator

CONFIG_KEY = "model.init_args.init_from"
DAC_SAMPLE_RATE = 44100  # DAC(...)'s default
DAC_NAMES = {codecgan: dac for dac, codecgan in GENERATOR_ARGUMENTS.items()}


def is_dac_weights(loaded: Mapping[str, Any]) -> bool:
    """Whether a loaded file is a DAC model (``{"state_dict", "metadata": {"kwargs"}}``, as DAC's ``save`` writes
    it); a ``codecgan fit`` checkpoint has no ``metadata``."""
    metadata = loaded.get("metadata")
    return "state_dict" in loaded and isinstance(metadata, Mapping) and "kwargs" in metadata


def dac_file_settings(dac_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The generator a DAC file's ``kwargs`` build, as ``CodecGenerator.architecture`` names it, and its
    ``sample_rate`` (Hz); DAC's defaults, which are ``CodecGenerator``'s, fill what the file leaves out."""
    given = codec_generator_kwargs(dac_kwargs)
    defaults = {name: parameter.default for name, parameter in inspect.signature(CodecGenerator).parameters.items()}
    settings = {name: given.get(name, default) for name, default in defaults.items() if name != "quantizer_dropout"}
    settings["encoder_strides"], settings["decoder_strides"] = (
        list(settings["encoder_strides"]),
        list(settings["decoder_strides"]),
    )
    if settings["latent_dim"] is None:
        settings["latent_dim"] = settings["encoder_dim"] * 2 ** len(settings["encoder_strides"])
    settings["sample_rate"] = dac_kwargs.get("sample_rate", DAC_SAMPLE_RATE)
    return settings


def config_key(setting: str) -> str:
    if setting == "sample_rate":
        return "data.init_args.sample_rate"
    return f"model.init_args.generator.init_args.{setting}"


def check_settings(path: str, in_file: Mapping[str, Any], configured: Mapping[str, Any]) -> None:
    """Raise one ``ConfigError`` naming each of ``configured``'s settings that differs from ``in_file``'s."""
    differences = [
        f"{name} is {in_file[name]} in the file"
        + (f" (DAC's {DAC_NAMES[name]})" if DAC_NAMES.get(name, name) != name else "")
        + f" and {configured[name]} in the config ({config_key(name)})"
        for name in configured
        if in_file[name] != configured[name]
    ]
    if differences:
        raise ConfigError(
            f"{CONFIG_KEY}: {path} holds a DAC model that is not this run's generator: {'; '.join(differences)}. "
            "Set these keys to the file's values (docs/training.md lists those of DAC's released models)."
        )


def load_dac_generator(generator: nn.Module, loaded: Mapping[str, Any], path: str, sample_rate: int | None) -> None:
    """Check the DAC file ``loaded`` (read from ``path``) against ``generator`` and ``sample_rate`` (Hz; ``None``:
    not compared) and copy its weights into ``generator``; log a note that the discriminator starts fresh."""
    if not isinstance(generator, CodecGenerator):
        raise ConfigError(
            f"{CONFIG_KEY}: {path} is a DAC model, which initialises a codecgan.models.CodecGenerator; this run's "
            f"generator is a {type(generator).__name__}."
        )
    checkpoint = read_dac_checkpoint(loaded)
    in_file = dac_file_settings(checkpoint.kwargs)
    configured = dict(generator.architecture)
    if sample_rate is not None:
        configured["sample_rate"] = sample_rate
    check_settings(path, in_file, configured)
    try:
        load_dac_generator_weights(generator, checkpoint.state_dict)
    except ValueError as error:
        raise ConfigError(f"{CONFIG_KEY}: {path}: {error}") from None
    rank_zero_info(
        f"{CONFIG_KEY}: the generator starts from the DAC model in {path} ({in_file['sample_rate']} Hz, "
        f"{in_file['n_codebooks']} codebooks of {in_file['codebook_size']}); the discriminator starts fresh, as DAC "
        "released none."
    )
