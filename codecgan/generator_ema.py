"""An exponential moving average (EMA) of the generator's weights (``model.init_args.ema_decay``).

After every generator optimizer step, each weight ``w`` of the generator moves its average ``a`` towards it:
``a <- a + (1 - decay) * (w - a)``. Averaged weights often sound better than the last step's (WavTokenizer #33;
audiocraft averages with decay 0.99), so validation, test and inference use them when the EMA is on.

Why it is written here rather than with ``torch.optim.swa_utils.AveragedModel``: ``update_parameters`` reads its
step counter back from the device on every call (``if self.n_averaged == 0``) and takes the decay as a Python
number, so a step the loop skipped on the device (a non-finite gradient, decided without a host read) would still
move the average unless the host read the decision. Here the update is three foreach ops per dtype whose weight is
``(1 - decay) * not_skipped``, a device tensor: a skipped step leaves the average bit for bit unchanged, and no
step reads anything back. Every DDP rank holds the same weights after the all-reduced step and the same skip
flag, so every rank computes the same average without a collective.

The average covers the parameters and the persistent floating-point buffers (what ``state_dict`` saves); other
persistent buffers (integer counters) are copied. It is saved in the module's ``state_dict`` as
``generator_ema.averaged.*`` (the generator's names behind that prefix), so a resumed run continues it exactly and
``codecgan.load`` can build an inference generator from it.

Evaluating with the average: ``swap_in`` copies it into the generator's own tensors (and keeps theirs), ``swap_out``
copies them back. The generator keeps its tensors (their addresses too), so a compiled generator, CUDA graphs
included, runs the averaged weights without recompiling.
"""

from __future__ import annotations

import copy
from typing import NamedTuple

import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor, nn

from codecgan.config_error import ConfigError
from codecgan.inference.checkpoint_loading import EMA_PREFIX, GENERATOR_PREFIX


class GeneratorEMA(nn.Module):
    """The averaged copy of ``generator`` (``averaged``, never trained) and its update.

    Args:
        generator: the trained network; the average starts equal to it.
        decay: in [0, 1); the weight of the old average in each update (0.999: about a thousand steps' memory).
    """

    def __init__(self, generator: nn.Module, decay: float) -> None:
        super().__init__()
        self.decay = decay
        self.averaged = copy.deepcopy(generator).requires_grad_(False)
        self._groups: list[_Group] | None = None
        self._copied: _Group | None = None  # non-floating buffers, copied
        self._saved: list[Tensor] | None = None  # the generator's own weights while the average is swapped in

    def _apply(self, *args, **kwargs):
        self._groups = None  # moving to another device or dtype replaces the buffers
        return super()._apply(*args, **kwargs)

    def _groups_with(self, generator: nn.Module) -> list[_Group]:
        """The averaged and current tensors, one group per (device, dtype) for the foreach ops, then one group of
        non-floating buffers; built once."""
        if self._groups is None:
            averaged, current = _tensors(self.averaged), _tensors(generator)
            if averaged.keys() != current.keys():
                raise RuntimeError("The generator's weights no longer have the names of its EMA copy.")
            groups: dict[object, _Group] = {}
            for name, tensor in averaged.items():
                key = (tensor.device, tensor.dtype) if tensor.is_floating_point() else "copied"
                group = groups.setdefault(key, _Group([], [], []))
                group.names.append(name)
                group.averaged.append(tensor)
                group.current.append(current[name])
            self._groups = [group for key, group in groups.items() if key != "copied"]
            self._copied = groups.get("copied")
        return self._groups

    @torch.no_grad()
    def update(self, generator: nn.Module, skipped: Tensor) -> None:
        """Move the average towards ``generator``'s weights after its optimizer step; ``skipped`` (a 0-dim bool
        tensor on the device) true leaves the average unchanged. No host read."""
        groups = self._groups_with(generator)
        weight = (~skipped) * (1.0 - self.decay)  # float32, on the device
        for group in groups:
            difference = torch._foreach_sub(group.current, group.averaged)
            torch._foreach_mul_(difference, weight)
            torch._foreach_add_(group.averaged, difference)
        if self._copied is not None:
            torch._foreach_copy_(self._copied.averaged, self._copied.current)

    @torch.no_grad()
    def reset(self, generator: nn.Module) -> None:
        """Make the average equal to ``generator``'s weights (a fresh run that loaded them with ``init_from``)."""
        self.averaged.load_state_dict(generator.state_dict())

    @property
    def swapped_in(self) -> bool:
        return self._saved is not None

    @torch.no_grad()
    def swap_in(self, generator: nn.Module) -> None:
        """Copy the average into ``generator``'s floating-point tensors, keeping theirs for ``swap_out``."""
        if self._saved is not None:
            return
        groups = self._groups_with(generator)
        current = [tensor for group in groups for tensor in group.current]
        self._saved = [tensor.clone() for tensor in current]
        torch._foreach_copy_(current, [tensor for group in groups for tensor in group.averaged])

    @torch.no_grad()
    def swap_out(self, generator: nn.Module) -> None:
        """Give ``generator`` back the weights ``swap_in`` kept."""
        if self._saved is None:
            return
        torch._foreach_copy_(
            [tensor for group in self._groups_with(generator) for tensor in group.current], self._saved
        )
        self._saved = None

    def generator_weights(self, generator: nn.Module) -> dict[str, Tensor]:
        """``generator``'s own weights by name, those ``swap_in`` kept while the average is swapped in: what a
        checkpoint written during an evaluation must hold as ``generator.*``."""
        weights = generator.state_dict()
        if self._saved is not None:
            names = [name for group in self._groups_with(generator) for name in group.names]
            weights.update(zip(names, self._saved))
        return weights


class _Group(NamedTuple):
    names: list[str]
    averaged: list[Tensor]
    current: list[Tensor]


def _tensors(network: nn.Module) -> dict[str, Tensor]:
    """What ``state_dict`` saves of ``network``, as the live tensors (without autograd)."""
    return {name: tensor.detach() for name, tensor in network.state_dict(keep_vars=True).items()}


def adapt_generator_ema_weights(state_dict: dict[str, Tensor], ema_on: bool, fitting: bool) -> None:
    """Make a checkpoint's ``state_dict`` fit a module with (``ema_on``) or without a generator EMA, in place.

    A checkpoint with an average that this run does not keep: the average is dropped (the raw generator is
    evaluated). A checkpoint without one, resumed by a fit that keeps one: the average starts from the checkpoint's
    generator. Evaluating such a checkpoint with ``ema_decay`` set would report raw weights as averaged ones: a
    ``ConfigError`` naming the key."""
    averaged = [key for key in state_dict if key.startswith(EMA_PREFIX)]
    if averaged and not ema_on:
        for key in averaged:
            del state_dict[key]
        rank_zero_info(
            "The checkpoint holds a generator EMA that this run does not keep (model.init_args.ema_decay is null): "
            "it is dropped, and the generator's own weights are used."
        )
    elif ema_on and not averaged:
        if not fitting:
            raise ConfigError(
                "The checkpoint holds no generator EMA (its run trained without one), but model.init_args.ema_decay "
                "is set: remove it (or pass the run's own config.yaml) to evaluate the generator's weights."
            )
        generator = {
            key[len(GENERATOR_PREFIX) :]: value for key, value in state_dict.items() if key.startswith(GENERATOR_PREFIX)
        }
        state_dict.update({EMA_PREFIX + name: value.clone() for name, value in generator.items()})
        rank_zero_info(
            "The checkpoint holds no generator EMA: the average (model.init_args.ema_decay) starts from its "
            "generator's weights."
        )
