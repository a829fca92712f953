"""DDP for GANs: one wrapper per network, so that each backward all-reduces only the network it trains.

Lightning's ``ddp`` wraps the whole LightningModule in one ``DistributedDataParallel``. A GAN's two backwards
then each reduce every parameter, generator and discriminator alike (the frozen network's gradients are zeros):
twice the gradient traffic of the trainable parameters, and ``find_unused_parameters`` is needed on top because
each backward leaves one network without gradients (Lightning #20866). DAC and CMGAN wrap the two networks
separately; ``GANDDPStrategy`` does the same inside Lightning:

- the generator and the discriminator get a ``DistributedDataParallel`` each (``DDPRouting.wrap``, on the
  module's ``ddp_routing``), with ``find_unused_parameters=False``; the LightningModule itself stays unwrapped, so
  Lightning calls ``training_step`` directly and parameter names and checkpoints are unchanged;
- a step calls the network it trains through ``GANModule.trained(network)`` (``DDPRouting.trained``) and the
  frozen one directly, so each trainable gradient is all-reduced exactly once per batch.

Use it as ``trainer.strategy: gan_ddp`` (registered when codecgan's CLI is imported) or by class path. Every other
DDP argument (``timeout``, ``process_group_backend``, ``broadcast_buffers``, ``gradient_as_bucket_view``, comm
hooks) works as in Lightning's ``DDPStrategy``; a comm hook is registered on both wrappers.
"""

from __future__ import annotations

import logging
import signal
import subprocess
from collections.abc import Callable
from typing import Any

import torch
from lightning.pytorch.overrides.distributed import _register_ddp_comm_hook
from lightning.pytorch.strategies import DDPStrategy, StrategyRegistry
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from codecgan.config_error import ConfigError

STRATEGY_NAME = "gan_ddp"
# How long the launching rank waits for the ranks it killed to be reaped, in seconds: SIGKILL ends a process at
# once unless it is stuck in the kernel (a hung file system), and then waiting longer would not help.
REAP_SECONDS = 5.0

log = logging.getLogger(__name__)


class DDPRouting:
    """Which module a training step calls for a network: its own DDP wrapper under ``gan_ddp`` when the step trains
    it, the network itself otherwise.

    The wrappers are kept in a dict, not as submodules, so parameter names and checkpoints are the same with and
    without DDP; they share the networks' parameters.
    """

    def __init__(self) -> None:
        self.wrappers: dict[nn.Module, nn.Module] = {}

    def wrap(self, networks: list[nn.Module], wrap: Callable[[nn.Module], nn.Module]) -> list[nn.Module]:
        """Give each of ``networks`` a DDP wrapper (``wrap(network) -> wrapper``) and return the wrappers; called by
        ``GANDDPStrategy.configure_ddp``."""
        self.wrappers = {network: wrap(network) for network in networks}
        return list(self.wrappers.values())

    def unwrap(self) -> None:
        self.wrappers = {}

    def trained(self, network: nn.Module, training: bool) -> nn.Module:
        """``network`` as the step that trains it must call it: through its wrapper (so that this step's backward
        all-reduces its gradients, once), itself when there is none or outside training (``training`` false). The
        network a step keeps frozen is called directly, never through this."""
        return self.wrappers.get(network, network) if training else network


def on_any_rank(flag: Tensor, world_size: int) -> Tensor:
    """``flag`` (a bool tensor) or-ed over the ``world_size`` ranks, on the device: a collective under DDP (every
    rank must call it), no host read; ``flag`` itself on one rank."""
    if world_size <= 1:
        return flag
    flag = flag.to(torch.int32)
    torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
    return flag.bool()


class GANDDPStrategy(DDPStrategy):
    """DDP with separate wrappers for generator and discriminator (see the module docstring)."""

    strategy_name = STRATEGY_NAME

    def __init__(self, **kwargs: Any) -> None:
        if kwargs.get("find_unused_parameters"):
            raise ConfigError(
                f"{STRATEGY_NAME} wraps generator and discriminator separately, so every backward uses all the "
                "parameters of its wrapper; find_unused_parameters would only add a graph traversal. Remove it."
            )
        if kwargs.get("static_graph"):
            raise ConfigError(f"{STRATEGY_NAME} does not support static_graph; remove it.")
        super().__init__(**kwargs)
        self.wrappers: list[DistributedDataParallel] = []

    def configure_ddp(self) -> None:
        module = self.model
        routing = getattr(module, "ddp_routing", None)
        if not isinstance(routing, DDPRouting):
            raise ConfigError(
                f"strategy {STRATEGY_NAME} trains a codecgan GANModule (generator + discriminator); "
                f"{type(module).__name__} is not one. Use strategy: ddp for other modules."
            )
        self.wrappers = routing.wrap([module.generator, module.discriminator], self._setup_model)
        self._register_ddp_hooks()

    def _register_ddp_hooks(self) -> None:
        if self.root_device.type == "cuda" and self._ddp_comm_hook is not None:
            for wrapper in self.wrappers:
                _register_ddp_comm_hook(
                    model=wrapper,
                    ddp_comm_state=self._ddp_comm_state,
                    ddp_comm_hook=self._ddp_comm_hook,
                    ddp_comm_wrapper=self._ddp_comm_wrapper,
                )

    def on_exception(self, exception: BaseException) -> None:
        """After the callbacks' ``on_exception`` (``CrashCheckpoint`` has saved): end the ranks this process
        launched, which may be waiting for it in a collective."""
        super().on_exception(exception)
        kill_launched_ranks(self, exception)

    def teardown(self) -> None:
        routing = getattr(self.lightning_module, "ddp_routing", None)
        if isinstance(routing, DDPRouting):
            routing.unwrap()
        self.wrappers = []
        super().teardown()


def kill_launched_ranks(strategy: DDPStrategy, exception: BaseException) -> None:
    """Kill the ranks this process launched (Lightning's launcher on rank 0) and reap them.

    They may be waiting for this rank in a collective, which a ``SIGTERM`` cannot interrupt. Lightning
    does the same on Ctrl-C. Elsewhere (ranks > 0, other launchers) there are none and this does nothing.
    """
    launcher = strategy.launcher
    children: list[subprocess.Popen] = list(getattr(launcher, "procs", []))
    if launcher is None or not any(child.poll() is None for child in children):
        return
    log.warning(
        f"Rank {strategy.global_rank} is stopping on {type(exception).__name__}; it kills the {len(children)} "
        "rank(s) it launched, which may be waiting for it in a collective."
    )
    launcher.kill(signal.SIGKILL)
    for child in children:
        try:
            child.wait(timeout=REAP_SECONDS)
        except subprocess.TimeoutExpired:
            log.warning(f"Rank process {child.pid} did not end within {REAP_SECONDS:.0f} s of a SIGKILL.")


if STRATEGY_NAME not in StrategyRegistry:
    StrategyRegistry.register(
        STRATEGY_NAME,
        GANDDPStrategy,
        description="DDP with one wrapper each for a GAN's generator and discriminator (codecgan)",
    )
