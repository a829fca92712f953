"""When a guarded callback may perform collectives, and the vote before each (callbacks/guard.py disables a callback
whose hook raised; this is how every rank decides it together, before any collective the callback would have
joined). A rank that stops calling a callback's collectives while the others go on into them would hang the job,
or pair its next collective with the wrong one. So:

- A callback performs collectives only at its *sync moments*: the hook invocations named by its `sync_moments`, a
  class mapping {hook: predicate(callback, trainer)} whose predicates read only the trainer's counters and the
  callback's constructor arguments, so every rank, a failed one included, evaluates them alike. Every guarded class
  also has the moments `on_validation_end` and `on_train_end`, so a failure is agreed on by the next validation (or
  the end of training) even in a callback without collectives of its own.
- Every collective goes through `callbacks/distributed.py`, which first calls `before_collective`: a *vote*, one
  float all-reduced as a sum, 0 from a healthy rank; nothing that can fail runs between a vote and its collective.
  `before_collective` refuses (raises) a collective outside a sync moment. At the end of every sync-moment
  invocation a healthy rank votes once more (the *exit vote*).
- A rank whose hook raised votes 1 exactly once: at once, when it raised in a sync-moment invocation, else at the
  start of the callback's next sync-moment invocation (skipping every hook body of the callback until then).

Why this cannot deadlock or mis-pair: the healthy ranks' votes in a sync-moment invocation are the same in number
on every rank (one per collective, which were already rank-identical, and the unconditional exit vote), and each
comes before the collective it guards. A rank that raised after k votes of an invocation has performed exactly
those k votes and their k collectives, and votes its 1 as vote k+1, which every healthy rank also makes (the next
in-body vote, or the exit vote: k is at most the number of in-body votes). A rank that raised outside a sync moment
has performed none of the callback's collectives since its last sync moment, and its 1 is the first vote of the
next one, as is every healthy rank's. So the first vote that sums above 0 is the same vote on every rank; there
every rank stops the invocation (a healthy one through `PeerFailed`, a `BaseException` so that no
`except Exception` in a callback swallows it), exchanges the error texts (`all_gather_object`, on failure only) and
disables the callback. The other callbacks and Lightning meanwhile perform their collectives at the same points on
every rank as before: a failure only removes this callback's.

Values a callback logs at epoch level (`log_epoch_value`) are alike on every rank already, so they are logged
without `sync_dist` (Lightning's `_ResultCollection` then does no collective for them at the epoch's end), and in a
sync-moment invocation only after its exit vote: every rank or none logs them, so no other callback reads a value
(`trainer.callback_metrics`) on one rank that another rank lacks.
"""

from __future__ import annotations

import re
import warnings
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.utilities.warnings import PossibleUserWarning

from codecgan.cadence import is_logging_step, logged_step

Predicate = Callable[[Any, Trainer], bool]


def always(callback: Any, trainer: Trainer) -> bool:
    return True


def at_logging_steps(callback: Any, trainer: Trainer) -> bool:
    return is_logging_step(trainer)


def outside_sanity_check(callback: Any, trainer: Trainer) -> bool:
    return not trainer.sanity_checking


def every_n_batches(attribute: str) -> Predicate:
    """The batches whose logged step + 1 is a multiple of the callback's `attribute` (a constructor argument)."""

    def predicate(callback: Any, trainer: Trainer) -> bool:
        return (logged_step(trainer) + 1) % getattr(callback, attribute) == 0

    return predicate


class PeerFailed(BaseException):
    """A vote found that a rank's hook raised: stop this invocation on every rank. Only the guard catches it."""


class CollectiveOutsideSyncMoment(RuntimeError):
    """A callback attempted a collective in a hook invocation its `sync_moments` do not name."""


@dataclass
class Invocation:
    """The hook invocation of a guarded callback now running; `epoch_logs` wait for its exit vote."""

    callback: str  # its class name
    hook: str
    sync: bool
    epoch_logs: list[tuple[LightningModule, str, float]] = field(default_factory=list)


# The guarded hook now running, for the collective helpers deep inside callbacks (RunningSums.flush, reduce_sum):
# passing it down to every one of them would change every signature. Set and reset around each hook invocation.
current: ContextVar[Invocation | None] = ContextVar("codecgan_guarded_hook", default=None)


def vote(trainer: Trainer, failed: bool) -> bool:
    """All-reduce one float, 1 from a rank that failed: whether any rank failed (one collective, one host read).

    `torch.distributed.all_reduce` itself when a process group is up: Lightning's `strategy.reduce` puts a barrier
    before every all-reduce, which would double the votes' collectives."""
    flag = torch.tensor([1.0 if failed else 0.0], device=trainer.strategy.root_device)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(flag)
    else:  # a strategy without a process group (the tests' fakes)
        flag = trainer.strategy.reduce(flag, reduce_op="sum")
    return bool(flag.item() > 0)


def before_collective(trainer: Trainer) -> None:
    """Vote before a collective of the guarded hook now running (none outside a guarded hook or in one process).

    Raises `PeerFailed` when another rank's hook raised, and `CollectiveOutsideSyncMoment` outside a sync moment:
    a collective there would be missed by a peer that skips this callback after failing."""
    invocation = current.get()
    if invocation is None or trainer.world_size <= 1:
        return
    if not invocation.sync:
        raise CollectiveOutsideSyncMoment(
            f"{invocation.callback}.{invocation.hook} attempted a collective at step {logged_step(trainer)}, "
            "which its sync_moments do not name; declare the moment there."
        )
    if vote(trainer, failed=False):
        raise PeerFailed


def log_epoch_value(pl_module: LightningModule, name: str, value: float) -> None:
    """`pl_module.log` an epoch value that every rank holds alike (reduced already): without `sync_dist`, so
    Lightning adds no collective; in a sync-moment invocation, once its exit vote has passed."""
    invocation = current.get()
    if invocation is not None and invocation.sync:
        invocation.epoch_logs.append((pl_module, name, value))
    else:
        log_now(pl_module, name, value)


def log_now(pl_module: LightningModule, name: str, value: float) -> None:
    """`pl_module.log` an epoch value alike on every rank, without `sync_dist`."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        # Lightning recommends sync_dist for every epoch value under DDP; this one is the same on every rank.
        # (filterwarnings replaces an identical filter, so the list does not grow.)
        recommendation = re.escape(f"It is recommended to use `self.log({name!r}, ...")
        warnings.filterwarnings("ignore", message=recommendation, category=PossibleUserWarning)
    pl_module.log(name, value, on_step=False, on_epoch=True, batch_size=1)
