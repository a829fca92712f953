"""The runs of a confirmation experiment: each arm is an ordinary `codecgan fit` run of the original run's config
with the experiment's change (treatment) or without it (control), in its own folder under `RUN/confirm/`."""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from codecgan.codec_module import BALANCED_TERMS
from codecgan.confirm.experiments import WEIGHTS, Scale, Set

CONFIG_NAME = "config.yaml"
CONFIRM_DIR = "confirm"
ARM_CONFIG = "arm.yaml"
SETTINGS_NAME = "confirm.json"
CHECKPOINT_STEP = re.compile(r"step[=_-]?(\d+)")
FAMILY_OF_MODULE = {"CodecGAN": "codec", "MetricGANEnhancer": "enhancement", "VocoderGAN": "vocoder"}
ITEM = re.compile(r"^(\w+)\[(\w+)\]$")
BALANCER = "model.init_args.loss_balancer"


class ConfirmError(Exception):
    """A run that cannot be confirmed as asked; the message says why and what to do."""


@dataclass(frozen=True)
class Arm:
    """One `codecgan fit` run: `folder` holds its `arm.yaml`, TensorBoard logs and checkpoints."""

    code: str
    label: str  # "control" or the experiment's slug
    seed: int
    folder: Path
    config: dict[str, Any]
    devices: int

    @property
    def settings_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def read_run_config(run: Path) -> dict[str, Any]:
    path = run / CONFIG_NAME
    if not path.is_file():
        raise ConfirmError(
            f"{run} has no {CONFIG_NAME}; `codecgan confirm` reruns a run from the config LightningCLI saved in its "
            "log folder. Give the folder of a `codecgan fit` run (the one holding its TensorBoard events)."
        )
    return yaml.safe_load(path.read_text()) or {}


def family_of(config: dict[str, Any]) -> str:
    class_path = str((config.get("model") or {}).get("class_path", ""))
    for name, family in FAMILY_OF_MODULE.items():
        if class_path.endswith(name):
            return family
    raise ConfirmError(
        f"The run's model {class_path or '(none)'} is not a codecgan family (CodecGAN, MetricGANEnhancer, VocoderGAN)."
    )


def checkpoint_steps(run: Path, config: dict[str, Any]) -> list[tuple[int, Path]]:
    """(global step, path) of the run's step-numbered checkpoints (ModelCheckpoint's `step{step}` names), oldest
    first; `last.ckpt` and crash checkpoints are left out, their step being unknown from the name."""
    folders = {run / "checkpoints"}
    for callback in (config.get("trainer") or {}).get("callbacks") or []:
        dirpath = ((callback or {}).get("init_args") or {}).get("dirpath")
        if dirpath:
            folders.add(Path(dirpath))
    found = []
    for folder in folders:
        for path in folder.glob("*.ckpt"):
            match = CHECKPOINT_STEP.search(path.stem)
            if match:
                found.append((int(match.group(1)), path.resolve()))
    return sorted(found)


def start_checkpoint(checkpoints: list[tuple[int, Path]], at_or_before: int | None) -> tuple[int, Path] | None:
    """The last checkpoint at or before step `at_or_before`; None (start fresh) when there is none."""
    if at_or_before is None:
        return None
    earlier = [(step, path) for step, path in checkpoints if step <= at_or_before]
    return earlier[-1] if earlier else None


def get_path(config: dict[str, Any], path: str) -> Any:
    node: Any = config
    for part in path.split("."):
        node = _child(node, part, create=False)
        if node is None:
            return None
    return node


def set_path(config: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    node: Any = config
    for part in parts[:-1]:
        node = _child(node, part, create=True)
    node[parts[-1]] = value


def _child(node: Any, part: str, create: bool) -> Any:
    item = ITEM.match(part)
    if item:
        key, name = item.groups()
        entries = node.get(key) or [] if isinstance(node, dict) else []
        matches = [entry for entry in entries if str((entry or {}).get("class_path", "")).split(".")[-1] == name]
        if not matches:
            if create:
                raise ConfirmError(
                    f"The run's config has no {key} entry of class {name}, which the experiment changes."
                )
            return None
        return matches[0]
    if not isinstance(node, dict):
        return None
    if part not in node or node[part] is None:
        if not create:
            return None
        node[part] = {}
    return node[part]


def weight_path(config: dict[str, Any], path: str) -> str:
    """Where the run's config holds the loss weight at ``path``: a codec term that the loss balancer balances has
    its weight in ``model.init_args.loss_balancer.weights`` (``loss_weights`` may not set it there); any other path
    is itself."""
    key = path.removeprefix(WEIGHTS)
    if key != path and key in BALANCED_TERMS and get_path(config, BALANCER) is not None:
        return f"{BALANCER}.weights.{key}"
    return path


def apply_change(config: dict[str, Any], path: str, change: Set | Scale) -> Any:
    """Apply one change in place, to the loss weight where the config holds it (``weight_path``); returns the new
    value."""
    path = weight_path(config, path)
    if isinstance(change, Set):
        value = change.value
    else:
        current = get_path(config, path)
        if current is None:
            current = change.default
        if current is None:
            raise ConfirmError(f"The experiment scales {path}, which the run's config does not set.")
        value = float(current) * change.factor
        if value == 0 and change.when_zero is not None:
            value = get_path(config, change.when_zero) if isinstance(change.when_zero, str) else change.when_zero
    set_path(config, path, value)
    return value


def arm_config(
    original: dict[str, Any],
    changes: dict[str, Set | Scale],
    folder: Path,
    seed: int,
    steps: int,
    start: tuple[int, Path] | None,
) -> dict[str, Any]:
    """The original config with `changes`, trained for `steps` batches from `start`'s weights (fresh optimizers)
    with `seed` for the run and the data order, logging and checkpointing into `folder` only."""
    config = copy.deepcopy(original)
    for key in ("ckpt_path", "verbose", "weights_only"):
        config.pop(key, None)
    for path, change in changes.items():
        apply_change(config, path, change)
    config["seed_everything"] = seed
    set_path(config, "data.init_args.seed", seed)
    model = config["model"].setdefault("init_args", {})
    model["init_from"] = str(start[1]) if start else None
    if start and model.get("discriminator_start_step"):  # the warm-up left at the start step, not a second one
        model["discriminator_start_step"] = max(0, int(model["discriminator_start_step"]) - start[0])
    trainer = config.setdefault("trainer", {})
    trainer.update(
        max_steps=steps,
        max_epochs=-1,
        val_check_interval=max(1, steps // 4),
        check_val_every_n_epoch=None,
        log_every_n_steps=max(1, min(int(trainer.get("log_every_n_steps") or 50), steps // 20)),
        default_root_dir=str(folder),
        enable_progress_bar=False,
        logger={
            "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
            "init_args": {
                "save_dir": str(folder.parent),
                "name": folder.name,
                "version": "",
                "default_hp_metric": False,
            },
        },
    )
    for callback in trainer.get("callbacks") or []:
        class_name = str(callback.get("class_path", "")).split(".")[-1]
        init_args = callback.setdefault("init_args", {}) if isinstance(callback, dict) else {}
        if class_name == "ModelCheckpoint":
            init_args.update(
                dirpath=str(folder / "checkpoints"), every_n_train_steps=max(1, steps // 2), save_last=True
            )
            init_args.pop("every_n_epochs", None)
        elif "dirpath" in init_args:
            init_args["dirpath"] = None
    return config


def devices_of(config: dict[str, Any]) -> int:
    devices = (config.get("trainer") or {}).get("devices", 1)
    if isinstance(devices, int) and devices > 0:
        return devices
    if isinstance(devices, (list, tuple)):
        return len(devices)
    return 1


def transform(value: float, name: str | None) -> float:
    if name == "abs_db":
        return abs(20 * math.log10(value)) if value > 0 else math.inf
    return value
