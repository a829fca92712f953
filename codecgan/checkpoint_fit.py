"""Whether the checkpoint given to ``codecgan fit|test|validate|predict --ckpt_path PATH`` can be loaded into the
config's model, checked before Lightning loads it, so that a checkpoint cut short or one of another model is a
one-line ``ConfigError`` naming the file and the fix instead of a traceback from inside Lightning.

- Whole (every subcommand, as soon as the arguments are parsed: LightningCLI loads the file right after, to
  read hyperparameters from it): the zip structure (``codecgan.saved_file_damage``).
- Of this model (``test``, ``validate``, ``predict``, once the model is built): its ``generator.*`` weights have
  the names and shapes of the config's generator (a checkpoint of the other family, or of the same family with
  other sizes, has not). The file is opened with ``mmap=True``, which reads the pickled structure and leaves the
  tensors' bytes on disk: milliseconds.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from codecgan.config_error import ConfigError
from codecgan.inference.checkpoint_loading import GENERATOR_PREFIX, find_run_config, weights_mismatch
from codecgan.saved_file_damage import saved_file_damage

# ``--ckpt_path`` values that name no file: resolved by Lightning, or by codecgan for fit (``auto``).
RESOLVED_NAMES = ("best", "last", "hpc", "registry", "auto")


def is_checkpoint_file(ckpt_path: str | None) -> bool:
    """Whether ``ckpt_path`` names a file to check: not ``None``, not one of the names that Lightning (or, for
    ``fit``, ``codecgan.checkpoint_resolution``) resolves, not a path that does not exist (Lightning names it)."""
    return ckpt_path is not None and ckpt_path not in RESOLVED_NAMES and Path(ckpt_path).is_file()


def check_checkpoint_whole(ckpt_path: str | None) -> None:
    """Raise ``ConfigError`` when the file ``ckpt_path`` is cut short or is not a ``torch.save`` file."""
    if not is_checkpoint_file(ckpt_path):
        return
    damage = saved_file_damage(Path(ckpt_path))
    if damage is not None:
        raise ConfigError(
            f"ckpt_path: {ckpt_path} is {damage}. Pass a whole checkpoint: another of the run's (its folder holds "
            "step*.ckpt besides last.ckpt) or a fresh copy; to resume a fit, --ckpt_path last picks the newest "
            "whole one."
        )


def check_checkpoint_fits(ckpt_path: str | None, model: nn.Module) -> None:
    """Raise ``ConfigError`` when the generator in the (whole) checkpoint file ``ckpt_path`` is not ``model``'s
    (``model.generator``)."""
    if not is_checkpoint_file(ckpt_path):
        return
    generator = getattr(model, "generator", None)
    if not isinstance(generator, nn.Module):
        return
    saved = torch.load(ckpt_path, map_location="cpu", weights_only=True, mmap=True).get("state_dict") or {}
    weights = {key[len(GENERATOR_PREFIX) :]: value for key, value in saved.items() if key.startswith(GENERATOR_PREFIX)}
    mismatch = weights_mismatch(generator.state_dict(), weights)
    if mismatch is not None:
        raise ConfigError(
            f"ckpt_path: {ckpt_path} holds another generator than this config's {type(generator).__name__}: "
            f"{mismatch}. Pass the config of the run that wrote it{_run_config_hint(ckpt_path)}."
        )


def _run_config_hint(ckpt_path: str) -> str:
    try:
        return f" (--config {find_run_config(ckpt_path)})"
    except FileNotFoundError:
        return ""
