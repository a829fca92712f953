"""Which strategy ``codecgan fit`` trains with on several devices: ``gan_ddp``, whatever the config says about it.

Lightning's own ``ddp`` cannot train a codecgan module: it wraps generator and discriminator in one
``DistributedDataParallel``, each of the two backwards leaves one network without gradients, and DDP stops with
"parameters that were not used in producing the loss". Its advice, ``ddp_find_unused_parameters_true``, runs, but
all-reduces both networks in both backwards: twice the gradient bytes of ``gan_ddp`` (``codecgan.ddp_strategy``).
So a config that leaves the strategy to Lightning (``auto``) gets ``gan_ddp`` when it asks for more than one device
or node (in every subcommand), and a fit that names a Lightning DDP strategy is refused at start-up with a
``ConfigError`` naming ``gan_ddp``.
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch.strategies import DDPStrategy, Strategy, StrategyRegistry

from codecgan.config_error import ConfigError
from codecgan.ddp_strategy import STRATEGY_NAME, GANDDPStrategy


def choose_strategy(
    strategy: str | Strategy, devices: Any, num_nodes: int, accelerator: Any, training: bool = True
) -> str | Strategy:
    """The strategy for a run with these trainer settings: ``strategy`` itself, or ``gan_ddp`` for ``auto`` on
    more than one device or node. When ``training``, raises ``ConfigError`` for Lightning's DDP strategies (by
    name or instance); ``validate``, ``test`` and ``predict`` take no backward, so those work there."""
    if strategy == "auto":
        return STRATEGY_NAME if num_nodes > 1 or device_count(devices, accelerator) > 1 else strategy
    if training and _is_lightning_ddp(strategy):
        named = strategy if isinstance(strategy, str) else type(strategy).__name__
        raise ConfigError(
            f"trainer.strategy {named!r} trains a codecgan module with one DDP wrapper around both networks: each "
            "backward leaves one of them without gradients, which DDP refuses, and finding the unused parameters "
            f"all-reduces twice the gradient bytes. Use trainer.strategy: {STRATEGY_NAME} (DDP with one wrapper per "
            "network; every DDPStrategy argument works the same), or leave it out: several devices get it by default."
        )
    return strategy


def device_count(devices: Any, accelerator: Any) -> int:
    """How many devices of this node the trainer settings ask for (``auto`` and ``-1``: every visible GPU, one
    CPU process)."""
    if isinstance(devices, str) and devices.strip() not in ("auto", "-1"):
        devices = devices.strip().rstrip(",")
        return len(devices.split(",")) if "," in devices else int(devices)
    if isinstance(devices, (list, tuple)):
        return len(devices)
    if devices in (None, "auto", -1, "-1"):
        uses_gpu = accelerator in ("gpu", "cuda", "auto", None) and torch.cuda.is_available()
        return torch.cuda.device_count() if uses_gpu else 1
    return int(devices)


def _is_lightning_ddp(strategy: str | Strategy) -> bool:
    if isinstance(strategy, str):
        strategy_class = StrategyRegistry[strategy]["strategy"] if strategy in StrategyRegistry else None
        return strategy_class is not None and issubclass(strategy_class, DDPStrategy) and strategy != STRATEGY_NAME
    return isinstance(strategy, DDPStrategy) and not isinstance(strategy, GANDDPStrategy)
