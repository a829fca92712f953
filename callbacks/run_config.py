"""The run's diagnostic configuration: the model family, each diagnostic callback's settings, and the settings its
rules run with, written once per fit as the TensorBoard text entry `diag/config` (JSON), so that `codecgan diagnose`
runs the same rules with the same settings on the run's logs."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any, Sequence

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_warn

from codecgan.cadence import logged_step
from codecgan.diagnosis.tags import RUN_CONFIG

# The LightningModule classes of each family, by name: a subclass belongs to its base's family.
FAMILIES = {"CodecGAN": "codec", "MetricGANEnhancer": "enhancement", "VocoderGAN": "vocoder"}


def model_family(pl_module: LightningModule) -> str:
    """The model family: "codec", "enhancement" or "vocoder" from the module's class (or a base class), else the class's name."""
    for cls in type(pl_module).__mro__:
        if cls.__name__ in FAMILIES:
            return FAMILIES[cls.__name__]
    return type(pl_module).__name__


def constructor_settings(callback: Any) -> dict[str, Any]:
    """The callback's constructor arguments, read back from the attributes of the same names (JSON values)."""
    names = [name for name in inspect.signature(type(callback).__init__).parameters if name != "self"]
    return {name: _plain(getattr(callback, name)) for name in names if hasattr(callback, name)}


def run_config(pl_module: LightningModule, callbacks: Sequence[Any]) -> dict[str, Any]:
    """{"family", "module", "rules": {code: keyword arguments of its rule}, "callbacks": [{"class", "codes",
    "settings"}]} for the diagnostic callbacks of a run, in their order. A code whose rule two callbacks configure
    differently keeps the first callback's settings (with a warning): `codecgan diagnose` runs each rule once."""
    rules: dict[str, dict[str, Any]] = {}
    for callback in callbacks:
        for code, settings in callback.rule_settings().items():
            settings = _plain(settings)
            if code in rules and rules[code] != settings:
                rank_zero_warn(
                    f"Two diagnostic callbacks configure {code} differently ({rules[code]} and {settings}); "
                    f"`codecgan diagnose` uses the first."
                )
            rules.setdefault(code, settings)
    return {
        "family": model_family(pl_module),
        "module": f"{type(pl_module).__module__}.{type(pl_module).__qualname__}",
        "rules": rules,
        "callbacks": [
            {"class": type(c).__name__, "codes": list(c.codes), "settings": constructor_settings(c)} for c in callbacks
        ],
    }


def config_text(config: dict[str, Any]) -> str:
    """The JSON, indented as a Markdown code block (TensorBoard's text tab renders it; the text is still JSON)."""
    return "\n".join("    " + line for line in json.dumps(config, indent=2, sort_keys=True).splitlines())


def write_run_config(trainer: Trainer, pl_module: LightningModule, callbacks: Sequence[Any]) -> None:
    """Write `diag/config` to every TensorBoard logger at this step (loggers write on rank 0 only)."""
    text = config_text(run_config(pl_module, callbacks))
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_text(RUN_CONFIG, text, logged_step(trainer))


def _plain(value: Any) -> Any:
    """`value` as JSON values: tuples become lists, paths strings, anything else unknown its repr."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)
