"""The guard around every diagnostic callback: an exception in one of its hooks (or in a diagnosis rule a hook
runs) disables that callback, on every rank alike, and the training goes on. A diagnostic exists to protect a run;
it must never be the reason a four-GPU job dies.

**What a failure does.** The rank that raised logs the callback's name, the hook, the step and the traceback once
(python `logging`, logger `callbacks.guard`); the callback is then disabled: none of its hooks runs again in this
process. Rank 0 writes the TensorBoard text entry `diag/disabled_callbacks` (callback, ranks, step, error and
traceback) and the scalar `diag/callback_errors` (how many callbacks of the run are disabled). Every other rank that
did not raise logs one line naming the rank that did. Not caught: a `ConfigError` from a start-up hook (`setup`,
`on_fit_start`, `on_train_start`, loading a checkpoint: the user's to fix, so `codecgan fit` ends with status 2),
and whatever is not an `Exception` (Ctrl-C, SIGTERM). `CODECGAN_CALLBACK_ERRORS=raise` lets every exception through,
for developing a callback (the test suite sets it).

**DDP.** Under several processes every rank disables the callback at the same vote, before any collective the
callback would have joined: `callbacks/sync_moments.py` says how, and why it cannot deadlock. In one process nothing
is voted: the callback is disabled where it raised.

**Resume.** A disabled callback's `state_dict` is `{"disabled_by_error": record}` (the record: the step, and each
failing rank's hook, step, error and traceback). A run resumed from it starts the callback again from an empty
state and says so in the log, naming the old error: the state at the failure cannot be trusted (the hook stopped
half-way), the usual cure (a fix to the code or the data) happens between the two runs, and an error that persists
is caught and reported again.
"""

from __future__ import annotations

import functools
import logging
import os
import traceback
from typing import Any, Callable, ClassVar

import torch
from lightning.pytorch import Callback, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_warn

from callbacks import sync_moments
from callbacks.sync_moments import Invocation, Predicate, always
from codecgan.cadence import logged_step
from codecgan.config_error import ConfigError

log = logging.getLogger(__name__)

CALLBACK_ERRORS = "diag/callback_errors"  # scalar: callbacks of the run disabled by an error so far
DISABLED_TEXT_TAG = "diag/disabled_callbacks"
DISABLED_STATE_KEY = "disabled_by_error"
ERRORS_ENV = "CODECGAN_CALLBACK_ERRORS"  # "raise": let a diagnostic's exception end the run
STATE_METHODS = ("state_dict", "load_state_dict")
HOOKS = tuple(
    name
    for name, value in vars(Callback).items()
    if callable(value) and not name.startswith("_") and name not in STATE_METHODS
)
# Hooks that run before the first training batch: a ConfigError there is the user's configuration to fix.
START_UP_HOOKS = frozenset({"setup", "on_fit_start", "on_sanity_check_start", "on_train_start", "on_load_checkpoint"})


class CallbackGuard:
    """One callback's failure state: `failure` (this rank's error, not yet voted on) and `disabled` (the agreed
    record, the same on every rank), and the hook now running."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.failure: dict[str, Any] | None = None
        self.disabled: dict[str, Any] | None = None
        self.running = False
        self.trainer: Trainer | None = None

    def run(self, callback: Any, hook: str, body: Callable, trainer: Trainer, args: tuple, kwargs: dict) -> Any:
        if self.running:  # a hook of this callback calling another (super().on_train_start(...))
            return body(callback, trainer, *args, **kwargs)
        if self.disabled is not None:
            return None
        self.trainer = trainer
        distributed = trainer.world_size > 1
        predicate = callback.sync_moments.get(hook)
        sync = distributed and predicate is not None and predicate(callback, trainer)
        if self.failure is not None:  # raised earlier on this rank: its one vote, at the next sync moment
            if not distributed:
                self._disable(callback, trainer, [self.failure])
            elif sync:
                sync_moments.vote(trainer, failed=True)
                self._disable_everywhere(callback, trainer)
            return None
        invocation = Invocation(self.name, hook, sync)
        token, self.running = sync_moments.current.set(invocation), True
        try:
            return self._invoke(callback, invocation, body, trainer, args, kwargs)
        finally:
            self.running = False
            sync_moments.current.reset(token)

    def _invoke(
        self, callback: Any, invocation: Invocation, body: Callable, trainer: Trainer, args: tuple, kwargs: dict
    ) -> Any:
        """The body, then the exit vote (sync moments), then the epoch values it logged; or the failure."""
        try:
            result = body(callback, trainer, *args, **kwargs)
        except sync_moments.PeerFailed:
            self._disable_everywhere(callback, trainer)
            return None
        except Exception as error:
            if _let_through(invocation.hook, error):
                raise
            self._fail(trainer, invocation.hook, error, invocation.sync)
            if trainer.world_size <= 1:
                self._disable(callback, trainer, [self.failure])
            elif invocation.sync:
                sync_moments.vote(trainer, failed=True)  # pairs with the healthy ranks' next vote of this invocation
                self._disable_everywhere(callback, trainer)
            return None
        if invocation.sync and sync_moments.vote(trainer, failed=False):  # the exit vote
            self._disable_everywhere(callback, trainer)
            return None
        try:
            for pl_module, name, value in invocation.epoch_logs:
                sync_moments.log_now(pl_module, name, value)
        except Exception as error:  # after the exit vote: agreed on at the next sync moment, as any later error
            if _let_through(invocation.hook, error):
                raise
            self._fail(trainer, invocation.hook, error, sync=False)
        return result

    def state_dict(self, callback: Any, body: Callable) -> dict[str, Any]:
        if self.disabled is None and self.failure is None:
            try:
                return body(callback)
            except Exception as error:
                if _let_through("state_dict", error):
                    raise
                self._fail(self.trainer, "state_dict", error, sync=False)
        return {DISABLED_STATE_KEY: self.disabled or {"failures": [self.failure]}}

    def load_state_dict(self, callback: Any, body: Callable, state: dict[str, Any]) -> None:
        if DISABLED_STATE_KEY in state:
            failures = state[DISABLED_STATE_KEY]["failures"]
            rank_zero_warn(
                f"{self.name} was disabled in the run this checkpoint comes from ({_summary(failures)}); it starts "
                "again here from an empty state, and is disabled again if the error comes back."
            )
            return
        try:
            body(callback, state)
        except Exception as error:
            if _let_through("load_state_dict", error, start_up=True):
                raise
            self._fail(self.trainer, "load_state_dict", error, sync=False)

    def _fail(self, trainer: Trainer | None, hook: str, error: Exception, sync: bool) -> None:
        """Record and log this rank's error (the traceback, once); the caller disables or votes."""
        rank = trainer.global_rank if trainer is not None else 0
        step = logged_step(trainer) if trainer is not None else None
        self.failure = {
            "rank": rank,
            "hook": hook,
            "step": step,
            "error": f"{type(error).__name__}: {error}",
            "traceback": "".join(traceback.format_exception(error)),
        }
        if trainer is None or trainer.world_size <= 1:
            when = "for the rest of the run"
        else:
            when = "on every rank " + ("now" if sync else "at its next synchronisation point")
        log.error(
            f"Diagnostic callback {self.name} failed in {hook} at step {step} on rank {rank}; it is disabled {when}, "
            f"and training goes on.\n{self.failure['traceback']}"
        )

    def _disable_everywhere(self, callback: Any, trainer: Trainer) -> None:
        """Every rank at the same vote: exchange the errors (a failure, so the cost does not matter), disable."""
        gathered: list[dict[str, Any] | None] = [None] * trainer.world_size
        torch.distributed.all_gather_object(gathered, self.failure)
        failures = [failure for failure in gathered if failure is not None]
        if self.failure is None:
            log.warning(
                f"Diagnostic callback {self.name} is disabled on every rank at step {logged_step(trainer)}: "
                f"{_summary(failures)} (the traceback is in that rank's log)."
            )
        self._disable(callback, trainer, failures)

    def _disable(self, callback: Any, trainer: Trainer, failures: list[dict[str, Any]]) -> None:
        step = logged_step(trainer)
        self.disabled, self.failure = {"step": step, "failures": failures}, None
        try:
            callback.on_disabled(trainer)
        except Exception as error:  # disabling must not end the run either
            log.warning(f"{self.name}.on_disabled failed: {type(error).__name__}: {error}")
        guarded = [c for c in trainer.callbacks if isinstance(c, GuardedCallback)]
        count = sum(c.guard.disabled is not None for c in guarded) + (callback not in guarded)
        where = " on every rank" if trainer.world_size > 1 else ""
        text = f"**{self.name}** is disabled{where} at step {step}: {_summary(failures)}"
        text += "".join(
            f"\n\nRank {f['rank']}:\n\n" + "\n".join("    " + line for line in f["traceback"].splitlines())
            for f in failures
        )
        for logger in trainer.loggers:  # loggers write on rank 0 only
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_text(DISABLED_TEXT_TAG, text, step)
            logger.log_metrics({CALLBACK_ERRORS: float(count)}, step=step)


def _summary(failures: list[dict[str, Any]]) -> str:
    return "; ".join(f"rank {f['rank']} failed in {f['hook']} at step {f['step']} ({f['error']})" for f in failures)


def _let_through(hook: str, error: Exception, start_up: bool = False) -> bool:
    if os.environ.get(ERRORS_ENV) == "raise":
        return True
    return isinstance(error, ConfigError) and (start_up or hook in START_UP_HOOKS)


def _guarded_hook(hook: str, body: Callable) -> Callable:
    @functools.wraps(body)
    def guarded(self: GuardedCallback, trainer: Trainer, *args: Any, **kwargs: Any) -> Any:
        return self.guard.run(self, hook, body, trainer, args, kwargs)

    guarded.guarded_body = body
    return guarded


def _guarded_state_dict(body: Callable) -> Callable:
    @functools.wraps(body)
    def state_dict(self: GuardedCallback) -> dict[str, Any]:
        return self.guard.state_dict(self, body)

    state_dict.guarded_body = body
    return state_dict


def _guarded_load_state_dict(body: Callable) -> Callable:
    @functools.wraps(body)
    def load_state_dict(self: GuardedCallback, state_dict: dict[str, Any]) -> None:
        self.guard.load_state_dict(self, body, state_dict)

    load_state_dict.guarded_body = body
    return load_state_dict


class GuardedCallback(Callback):
    """A callback whose hooks are guarded (see the module docstring): every hook a subclass defines, its sync-moment
    hooks and its state methods are wrapped when the subclass is created.

    `sync_moments`: {hook name: predicate(callback, trainer)}, the invocations in which the callback may perform
    collectives (through `callbacks/distributed.py`); merged with those of its base classes.
    """

    sync_moments: ClassVar[dict[str, Predicate]] = {"on_validation_end": always, "on_train_end": always}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        merged: dict[str, Predicate] = {}
        for base in reversed(cls.__mro__):
            merged.update(vars(base).get("sync_moments", {}))
        cls.sync_moments = merged
        wrappers = {
            **{hook: functools.partial(_guarded_hook, hook) for hook in HOOKS},
            "state_dict": _guarded_state_dict,
            "load_state_dict": _guarded_load_state_dict,
        }
        for name, wrap in wrappers.items():
            method = getattr(cls, name)
            needed = name in vars(cls) or name in merged or name in STATE_METHODS
            if needed and not hasattr(method, "guarded_body"):
                setattr(cls, name, wrap(method))

    def on_disabled(self, trainer: Trainer) -> None:
        """Undo what the callback set up outside itself (called when it is disabled, on every rank alike)."""

    @property
    def guard(self) -> CallbackGuard:
        """Created on first use: subclasses need not call `super().__init__()`."""
        guard = self.__dict__.get("_guard")
        if guard is None:
            guard = self.__dict__["_guard"] = CallbackGuard(type(self).__name__)
        return guard
