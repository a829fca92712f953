"""Vocos's state dicts under codecgan's keys: a released `pytorch_model.bin` and Vocos's training checkpoints.

Key layouts (Vocos 0.1.0):
- `pytorch_model.bin` (`vocos.pretrained.Vocos`): `feature_extractor.mel_spec.{spectrogram.window,mel_scale.fb}`,
  `backbone.*`, `head.out.*`, `head.istft.window`. `VocosGenerator` keeps the `backbone.*` and `head.*` names, and
  `VocosMelSpectrogram` the `mel_spec.*` ones.
- a Lightning checkpoint of `vocos.experiment.VocosExp` has, under `state_dict`, the same generator keys plus
  `multiperioddisc.discriminators.<k>.{convs.<i>,conv_post}.*`,
  `multiresddisc.discriminators.<k>.{band_convs.<b>.<i>,conv_post}.*` and `multiresddisc.discriminators.<k>.spec_fn.window`,
  and `melspec_loss.mel_spec.*` buffers.
Vocos's discriminators use `torch.nn.utils.weight_norm` (`weight_g`, `weight_v`); codecgan's convs use the
parametrization (`parametrizations.weight.original0`, `original1`): the same two tensors.
"""

from __future__ import annotations

import re

from torch import Tensor

GENERATOR_PREFIXES = ("backbone.", "head.")
FEATURE_EXTRACTOR_PREFIX = "feature_extractor."
MPD_PREFIX = "multiperioddisc."
MRD_PREFIX = "multiresddisc."
_WEIGHT_NORM_KEYS = (
    (r"\.weight_g$", ".parametrizations.weight.original0"),
    (r"\.weight_v$", ".parametrizations.weight.original1"),
)


def _with_prefix(state: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {key[len(prefix) :]: value for key, value in state.items() if key.startswith(prefix)}


def from_vocos_state_dict(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """The generator's entries of a Vocos `pytorch_model.bin` or training checkpoint's `state_dict`, for
    `VocosGenerator.load_state_dict(strict=True)`. Raises `KeyError` naming the layout when there are none."""
    generator = {key: value for key, value in state.items() if key.startswith(GENERATOR_PREFIXES)}
    if not generator:
        raise KeyError(
            "no Vocos generator weights: expected keys starting with 'backbone.' and 'head.' "
            f"(as in a pytorch_model.bin); found {sorted(state)[:3]}..."
        )
    return generator


def vocos_mel_state_dict(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """The mel front-end's buffers of a Vocos `pytorch_model.bin`, for `VocosMelSpectrogram.load_state_dict`."""
    return _with_prefix(state, FEATURE_EXTRACTOR_PREFIX)


def from_vocos_discriminator_state_dict(state: dict[str, Tensor], prefix: str = "") -> dict[str, Tensor]:
    """A Vocos `MultiPeriodDiscriminator` or `MultiResolutionDiscriminator` state dict (the entries under `prefix`,
    e.g. `MPD_PREFIX` or `MRD_PREFIX` in a training checkpoint) under the keys of `VocosMultiPeriodDiscriminator` or
    `VocosMultiResolutionDiscriminator`. The STFT windows (`spec_fn.window`) are dropped: codecgan's are computed."""
    renamed = {}
    for key, value in _with_prefix(state, prefix).items():
        if key.endswith(".spec_fn.window"):
            continue
        key = key.replace(".band_convs.", ".band_stacks.")
        for pattern, replacement in _WEIGHT_NORM_KEYS:
            key = re.sub(pattern, replacement, key)
        renamed[key] = value
    return renamed
