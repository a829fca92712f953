"""Fault injection for the diagnostic callbacks' guard (callbacks/guard.py): one diagnostic callback raises in one
of its hooks at a chosen step, on one rank or all. For tests and fault overlays, never a real training config."""

from __future__ import annotations

from typing import Any

import lightning as L

from codecgan.cadence import logged_step
from codecgan.config_error import ConfigError

ERRORS = {"RuntimeError": RuntimeError, "ConfigError": ConfigError}


class RaiseInCallback(L.Callback):
    """Make the callback of class `callback` (its class name, e.g. ``DiscriminatorHealth``) raise in `hook` when the
    logged step is `step`, on rank `rank` (every rank when None).

    Args:
        callback: the class name of a callback of the run.
        step: the logged step (Lightning's batch counter) of the invocation that raises.
        hook: a hook called after ``setup`` (``on_fit_start``, ``on_train_batch_end``, ``on_validation_epoch_end``...).
        rank: the global rank that raises; None: every rank.
        after: raise once the hook's own body has run (after its collectives), instead of before it.
        error: ``RuntimeError`` (a diagnostic's bug) or ``ConfigError`` (a configuration mistake).

    At ``setup`` the target instance is given a subclass of its own class (same name and state key) whose hook
    raises around the original, so the guard wraps it as it wraps every hook of a diagnostic callback.
    """

    def __init__(
        self,
        callback: str,
        step: int = 0,
        hook: str = "on_train_batch_end",
        rank: int | None = None,
        after: bool = False,
        error: str = "RuntimeError",
    ) -> None:
        if not hook.startswith("on_"):
            raise ValueError(f"RaiseInCallback hook must be a callback hook called after setup, got {hook!r}.")
        if error not in ERRORS:
            raise ValueError(f"RaiseInCallback error must be one of {', '.join(ERRORS)}, got {error!r}.")
        self.callback, self.step, self.hook = callback, step, hook
        self.rank, self.after, self.error = rank, after, error

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        targets = [c for c in trainer.callbacks if type(c).__name__ == self.callback]
        if not targets:
            names = ", ".join(type(c).__name__ for c in trainer.callbacks)
            raise ValueError(f"RaiseInCallback found no callback {self.callback!r} in the run (it has: {names}).")
        for target in targets:
            target.__class__ = self._faulty(type(target))

    def _faulty(self, cls: type) -> type:
        fault = self

        def hook(callback: Any, trainer: L.Trainer, *args: Any, **kwargs: Any) -> Any:
            due = logged_step(trainer) == fault.step and fault.rank in (None, trainer.global_rank)
            if due and not fault.after:
                raise fault._exception(trainer)
            result = getattr(super(faulty, callback), fault.hook)(trainer, *args, **kwargs)
            if due and fault.after:
                raise fault._exception(trainer)
            return result

        namespace = {self.hook: hook, "__qualname__": cls.__qualname__, "__module__": cls.__module__}
        faulty = type(cls.__name__, (cls,), namespace)
        return faulty

    def _exception(self, trainer: L.Trainer) -> Exception:
        where = "after" if self.after else "before"
        return ERRORS[self.error](f"Injected failure in {self.callback}.{self.hook} ({where} its body).")
