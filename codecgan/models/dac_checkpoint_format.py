"""DAC's checkpoint format and its names in codecgan: reading a DAC `.pth`, renaming its keys, copying its
weights into a built module, translating its constructor arguments. Nothing here builds a model, so the models
(`CodecGenerator.from_dac_checkpoint`) and `codecgan.models.dac_checkpoint` both build on it; see the latter for
the format and the two ways the names differ.
"""

from __future__ import annotations

import pickle
import re
from dataclasses import dataclass, field
from os import PathLike
from typing import Any, Callable, Mapping

import torch
from torch import Tensor, nn

WEIGHT_NORM_NAMES = {
    "weight_g": "parametrizations.weight.original0",
    "weight_v": "parametrizations.weight.original1",
}
# DAC generator path -> codecgan path, first match wins: DAC's Encoder/EncoderBlock keep their layers in
# `.block`, its Decoder in `.model` and DecoderBlock in `.block`; a ResidualUnit's `.block` is the same in both.
GENERATOR_PATHS = (
    (re.compile(r"^encoder\.block\.(\d+)\.block\.(\d+)\.(.+)$"), r"encoder.\1.\2.\3"),
    (re.compile(r"^encoder\.block\.(\d+)\.(.+)$"), r"encoder.\1.\2"),
    (re.compile(r"^decoder\.model\.(\d+)\.block\.(\d+)\.(.+)$"), r"decoder.\1.\2.\3"),
    (re.compile(r"^decoder\.model\.(\d+)\.(.+)$"), r"decoder.\1.\2"),
    (re.compile(r"^(quantizer\.quantizers\.\d+\..+)$"), r"\1"),
)
DISCRIMINATOR_KEY = re.compile(r"^discriminators\.(\d+)\.(.+)$")
# DAC(...) argument -> CodecGenerator argument.
GENERATOR_ARGUMENTS = {
    "encoder_dim": "encoder_dim",
    "encoder_rates": "encoder_strides",
    "latent_dim": "latent_dim",
    "decoder_dim": "decoder_dim",
    "decoder_rates": "decoder_strides",
    "n_codebooks": "n_codebooks",
    "codebook_size": "codebook_size",
    "codebook_dim": "codebook_dim",
    "quantizer_dropout": "quantizer_dropout",
}


@dataclass
class DACCheckpoint:
    """What a DAC `.pth` holds: DAC-named weights and the model's constructor arguments (`{}` if absent)."""

    state_dict: dict[str, Tensor]
    kwargs: dict[str, Any] = field(default_factory=dict)


def read_dac_checkpoint(source: str | PathLike | Mapping[str, Any]) -> DACCheckpoint:
    """Read a DAC checkpoint from a path, a loaded `{"state_dict", "metadata"}` dict or a bare state dict.

    Files load with `weights_only=True`: DAC's weights files hold tensors, numbers, strings and lists only.
    """
    if isinstance(source, Mapping):
        loaded = source
    else:
        try:
            loaded = torch.load(source, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as error:
            raise ValueError(
                f"{source} holds objects other than tensors and plain values, which are not loaded unchecked. If you "
                "trust it, pass `torch.load(path, weights_only=False)` instead of the path."
            ) from error
    if "state_dict" in loaded:
        metadata = loaded.get("metadata") or {}
        return DACCheckpoint(dict(loaded["state_dict"]), dict(metadata.get("kwargs") or {}))
    if loaded and all(isinstance(value, Tensor) for value in loaded.values()):
        return DACCheckpoint(dict(loaded))
    raise ValueError(
        f"{source!r} is not a DAC checkpoint: expected a dict with 'state_dict' (and 'metadata') or a state "
        f"dict of tensors, got keys {sorted(loaded)[:8]}."
    )


def _renamed_weight_norm(path: str) -> str:
    module, _, name = path.rpartition(".")
    return f"{module}.{WEIGHT_NORM_NAMES[name]}" if name in WEIGHT_NORM_NAMES else path


def generator_key(dac_key: str) -> str | None:
    """codecgan's name for a DAC generator (`DAC`) key, `None` for a key with no counterpart."""
    for pattern, replacement in GENERATOR_PATHS:
        if pattern.match(dac_key):
            return _renamed_weight_norm(pattern.sub(replacement, dac_key))
    return None


def discriminator_key(dac_key: str, n_periods: int) -> str | None:
    """codecgan's name for a DAC `Discriminator` key; its first `n_periods` sub-discriminators are the MPD's.

    DAC keeps all sub-discriminators in one list (MPDs, then MSDs, then MRDs); codecgan splits it into `mpd`
    and `mrd` (it has no MSD: DAC's published configs use none), so a DAC discriminator with MSDs does not fit.
    """
    match = DISCRIMINATOR_KEY.match(dac_key)
    if match is None:
        return None
    index, rest = int(match[1]), match[2]
    if index < n_periods:
        path = f"mpd.discriminators.{index}." + re.sub(r"^convs\.(\d+)\.0\.", r"convs.\1.", rest)
    else:
        path = f"mrd.discriminators.{index - n_periods}." + re.sub(
            r"^band_convs\.(\d+)\.(\d+)\.0\.", r"band_stacks.\1.\2.", rest
        )
    return _renamed_weight_norm(path)


def load_dac_weights(
    module: nn.Module, dac_state_dict: Mapping[str, Tensor], rename: Callable[[str], str | None]
) -> None:
    """Copy DAC-named weights into `module`, `rename(dac_key) -> codecgan key or None`; all keys must match.

    Raises `ValueError` listing the DAC keys without a counterpart, the module's parameters the checkpoint
    leaves unset and the shapes that differ, before anything is copied.
    """
    expected = module.state_dict()
    renamed, unexpected = {}, []
    for dac_key, value in dac_state_dict.items():
        key = rename(dac_key)
        if key is None or key not in expected:
            unexpected.append(dac_key if key is None else f"{dac_key} (as {key})")
        else:
            renamed[key] = value
    missing = [key for key in expected if key not in renamed]
    mismatched = [
        f"{key}: checkpoint {tuple(value.shape)}, model {tuple(expected[key].shape)}"
        for key, value in renamed.items()
        if value.shape != expected[key].shape
    ]
    problems = [
        f"{len(found)} {what}: {', '.join(found[:6])}{', ...' if len(found) > 6 else ''}."
        for what, found in (
            ("checkpoint keys have no counterpart in the model", unexpected),
            ("model parameters are not in the checkpoint", missing),
            ("shapes differ", mismatched),
        )
        if found
    ]
    if problems:
        raise ValueError(
            f"The DAC checkpoint does not fit this {type(module).__name__} (was it built with the checkpoint's "
            "hyperparameters?): " + " ".join(problems)
        )
    module.load_state_dict(renamed)


def load_dac_generator_weights(generator: nn.Module, dac_state_dict: Mapping[str, Tensor]) -> None:
    """Copy a DAC generator's weights (`DAC.state_dict()`) into `generator`, a `CodecGenerator`."""
    load_dac_weights(generator, dac_state_dict, generator_key)


def codec_generator_kwargs(dac_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """`CodecGenerator`'s arguments for `DAC(**dac_kwargs)`; `sample_rate` and unknown keys are left out."""
    kwargs = {GENERATOR_ARGUMENTS[key]: value for key, value in dac_kwargs.items() if key in GENERATOR_ARGUMENTS}
    codebook_dim = kwargs.get("codebook_dim")
    if isinstance(codebook_dim, (list, tuple)):
        if len(set(codebook_dim)) != 1:
            raise ValueError(f"codecgan's codebooks share one codebook_dim; the checkpoint has {list(codebook_dim)}.")
        kwargs["codebook_dim"] = codebook_dim[0]
    if "quantizer_dropout" in kwargs:  # DAC declares it a bool and uses it as a fraction (True = 1.0)
        kwargs["quantizer_dropout"] = float(kwargs["quantizer_dropout"])
    return kwargs
