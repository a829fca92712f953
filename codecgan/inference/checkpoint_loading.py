"""A trained generator from a checkpoint written by ``codecgan fit``, without Lightning.

A Lightning checkpoint holds the weights (``state_dict``: ``generator.*``, ``discriminator.*``), the
optimizer states and the loop counters, but not the model's constructor arguments: LightningCLI writes
those to ``config.yaml`` in the run's log folder (``runs/<name>/config.yaml``, next to the
``checkpoints/`` folder). ``load`` reads the checkpoint with ``torch.load(weights_only=True)``, finds
the config, imports the generator class by its ``class_path`` and builds it with its ``init_args``;
neither Lightning nor the LightningModule is imported.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from codecgan.inference.vocoder import Vocoder

CONFIG_NAME = "config.yaml"
GENERATOR_PREFIX = "generator."
MEL_SPECTROGRAM_PREFIX = "mel_spectrogram."  # a vocoder's front-end (codecgan.VocoderGAN)
EMA_PREFIX = "generator_ema.averaged."  # the average of the generator's weights (codecgan.generator_ema)


@dataclass(frozen=True)
class GeneratorSpec:
    """What builds a run's generator: its class path, constructor arguments and sample rate (Hz)."""

    class_path: str
    init_args: dict[str, Any]
    sample_rate: int
    config_path: Path
    mel_spectrogram: dict[str, Any] | None = None  # a vocoder's front-end: {class_path, init_args}


def find_run_config(checkpoint: str | PathLike) -> Path:
    """The ``config.yaml`` LightningCLI wrote for the run of ``checkpoint``.

    Looks next to the checkpoint, in its parent folder (``<run>/checkpoints/x.ckpt`` with
    ``<run>/config.yaml``, as the shipped configs write them) and in that folder's subfolders
    (``<run>/checkpoints`` next to a logger's ``<run>/<name>/config.yaml``); raises ``FileNotFoundError``
    naming the places searched when there is none, or when several subfolders hold one."""
    folder = Path(checkpoint).resolve().parent
    for candidate in (folder / CONFIG_NAME, folder.parent / CONFIG_NAME):
        if candidate.is_file():
            return candidate
    nested = sorted(folder.parent.glob(f"*/{CONFIG_NAME}"))
    if len(nested) == 1:
        return nested[0]
    found = f" several: {', '.join(map(str, nested))}" if nested else " none"
    raise FileNotFoundError(
        f"No run configuration for checkpoint {checkpoint}: looked for {CONFIG_NAME} in {folder}, {folder.parent} "
        f"and its subfolders and found{found}. Pass the run's config.yaml (config=... or --config)."
    )


def read_generator_spec(config_path: str | PathLike) -> GeneratorSpec:
    """The generator's class path, ``init_args`` and sample rate from a LightningCLI ``config.yaml``."""
    config_path = Path(config_path)
    config = yaml.safe_load(config_path.read_text()) or {}
    model = (config.get("model") or {}).get("init_args") or {}
    generator = model.get("generator")
    if not isinstance(generator, dict) or "class_path" not in generator:
        raise ValueError(
            f"{config_path} has no model.init_args.generator with a class_path; is it a codecgan run's config?"
        )
    # The CLI links data.sample_rate to the model's, so the saved config holds it under data.
    data = (config.get("data") or {}).get("init_args") or {}
    sample_rate = data.get("sample_rate", model.get("sample_rate"))
    if sample_rate is None:
        raise ValueError(f"{config_path} holds no data.init_args.sample_rate (nor model.init_args.sample_rate).")
    front_end = model.get("mel_spectrogram")
    front_end = front_end if isinstance(front_end, dict) and "class_path" in front_end else None
    return GeneratorSpec(
        generator["class_path"], generator.get("init_args") or {}, int(sample_rate), config_path, front_end
    )


def instantiate(class_path: str, init_args: dict[str, Any]) -> Any:
    """``class_path(**init_args)``, building nested ``{class_path, init_args}`` arguments first."""
    module_name, _, class_name = class_path.rpartition(".")
    cls = getattr(importlib.import_module(module_name), class_name)
    arguments = {
        name: instantiate(value["class_path"], value.get("init_args") or {})
        if isinstance(value, dict) and "class_path" in value
        else value
        for name, value in init_args.items()
    }
    return cls(**arguments)


def generator_state_dict(checkpoint: dict[str, Any], path: str | PathLike) -> dict[str, torch.Tensor]:
    """The generator weights of a Lightning checkpoint, without their prefix: its average
    (``generator_ema.averaged.*``) when the run kept one (``model.init_args.ema_decay``), else ``generator.*``."""
    state = checkpoint.get("state_dict")
    if state is None:
        raise ValueError(f"{path} holds no state_dict; is it a Lightning checkpoint written by codecgan fit?")
    prefix = EMA_PREFIX if any(key.startswith(EMA_PREFIX) for key in state) else GENERATOR_PREFIX
    weights = {key[len(prefix) :]: value for key, value in state.items() if key.startswith(prefix)}
    if not weights:
        raise ValueError(f"{path} holds no generator.* weights.")
    return weights


def weights_mismatch(expected: dict[str, torch.Tensor], saved: dict[str, torch.Tensor]) -> str | None:
    """How the ``saved`` weights differ from the ``expected`` ones (names and shapes), as one sentence, or ``None``
    when they fit: what ``load_state_dict`` would refuse, said in a line instead of a list of every key."""
    missing = sorted(expected.keys() - saved.keys())
    unexpected = sorted(saved.keys() - expected.keys())
    reshaped = sorted(name for name in expected.keys() & saved.keys() if expected[name].shape != saved[name].shape)
    parts = [
        f"{len(names)} {what} (e.g. {names[0]})"
        for names, what in ((missing, "missing"), (unexpected, "unexpected"), (reshaped, "of another shape"))
        if names
    ]
    return f"{', '.join(parts)} of {len(expected)} weights" if parts else None


def load(
    checkpoint: str | PathLike, config: str | PathLike | None = None, map_location: str | torch.device = "cpu"
) -> nn.Module | Vocoder:
    """The generator of a ``codecgan fit`` checkpoint, in eval mode, on ``map_location``: with the average of its
    weights when the run kept one (``model.init_args.ema_decay``), as validation and ``codecgan test`` used them.

    ``config``: the run's ``config.yaml`` (found next to the checkpoint when not given, see
    ``find_run_config``). The returned module has ``sample_rate`` (Hz) set besides its own settings:
    a codec (``CodecGenerator``) has ``hop_length`` (samples per frame; frames per second
    ``sample_rate / hop_length``), ``n_codebooks`` and ``codebook_size``; an enhancer
    (``CMGANGenerator``) has ``n_fft``, ``hop_length``, ``compress_exponent`` and its STFT ``window``.

    A vocoder's run (one with ``model.init_args.mel_spectrogram``) gives a ``Vocoder``: the generator with the
    mel front-end it was trained on (``sample_rate``, ``hop_length``, ``n_mels``; ``vocode(mel)``, ``mel(audio)``,
    ``resynthesise(audio)``), since the generator alone cannot turn a recording into the log-mel it takes.
    """
    config_path = Path(config) if config is not None else find_run_config(checkpoint)
    spec = read_generator_spec(config_path)
    # On the CPU first: the checkpoint also holds both optimizers' states, which the device need not see.
    saved = torch.load(Path(checkpoint), map_location="cpu", weights_only=True)
    generator = instantiate(spec.class_path, spec.init_args)
    weights = generator_state_dict(saved, checkpoint)
    mismatch = weights_mismatch(generator.state_dict(), weights)
    if mismatch is not None:
        raise ValueError(
            f"{checkpoint}'s generator weights do not fit the {type(generator).__name__} that {config_path} builds: "
            f"{mismatch}. Pass the config.yaml of the run that wrote the checkpoint with --config."
        )
    generator.load_state_dict(weights)
    generator.sample_rate = spec.sample_rate
    if spec.mel_spectrogram is not None:
        front_end = instantiate(spec.mel_spectrogram["class_path"], spec.mel_spectrogram.get("init_args") or {})
        state = saved["state_dict"]
        # The front-end holds no trained weights; its saved buffers (filterbank, window) are loaded when present.
        buffers = {
            k[len(MEL_SPECTROGRAM_PREFIX) :]: v for k, v in state.items() if k.startswith(MEL_SPECTROGRAM_PREFIX)
        }
        if buffers:
            front_end.load_state_dict(buffers)
        return Vocoder(generator, front_end, spec.sample_rate).to(map_location).eval()
    return generator.to(map_location).eval()
