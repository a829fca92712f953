"""A persistent pool of PESQ worker processes that scores a batch in the background.

``submit`` starts scoring a batch and returns at once with a ``PesqHandle``; ``handle.result()``
waits for the scores. Each clip goes to one worker process (``pesq_worker.py``) in one call:
``pesq``'s C library keeps global state and never releases the GIL, so threads would neither be
safe nor faster. One light thread per worker in this process only feeds its worker and waits on
its pipe (``pesq_processes.py``). A clip that cannot be scored gets NaN and a failure kind
(``FAILURE_KINDS``): a clip PESQ must not see (too short or long, NaN/inf, a silent estimate) is
refused before it reaches a worker; a worker that exceeds the clip's time bound (``PesqLimits``) is
killed and replaced and the clip counted as ``timeout``; one that dies is replaced and the clip counted
as ``worker_died``. Results never depend on the number of workers. ``processes=0`` scores inline,
blocking, in this process: the same refusals, but no time bound.

Workers exit when the pool closes, when it is garbage collected, at interpreter exit, and when this
process dies (their stdin closes), so none outlives the trainer. They run in their own session, so
Ctrl-C reaches only the trainer, which closes the pool.
"""

from __future__ import annotations

import os
import weakref
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from codecgan.metrics.pesq_limits import PesqLimits
from codecgan.metrics.pesq_processes import Clip, Score, WorkerSet
from codecgan.metrics.pesq_worker import FAILURE_KINDS, score_clip


def default_worker_count(local_world_size: int = 1) -> int:
    """The CPU cores this process may use, shared among the ranks on this machine, at least 1."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, local_world_size))


@dataclass(frozen=True)
class PesqResult:
    """Scores of one batch: ``scores`` ``[B]`` (MOS-LQO, NaN where failed) and each clip's failure
    kind (``None`` when scored)."""

    scores: np.ndarray
    failures: tuple[str | None, ...]

    @property
    def failed_clips(self) -> int:
        return sum(kind is not None for kind in self.failures)

    def failure_counts(self) -> dict[str, int]:
        """Clips per failure kind, every kind present (zeros included)."""
        return {kind: self.failures.count(kind) for kind in FAILURE_KINDS}

    def failure_codes(self) -> np.ndarray:
        """``[B]`` int64: the index of each clip's kind in ``FAILURE_KINDS``, -1 when scored."""
        return np.array([-1 if kind is None else FAILURE_KINDS.index(kind) for kind in self.failures], np.int64)

    @classmethod
    def from_scores(cls, scores: list[Score]) -> PesqResult:
        """From ``score_clip``'s ``(score, failure)`` pairs."""
        return cls(np.array([score for score, _ in scores], np.float64), tuple(kind for _, kind in scores))

    @classmethod
    def from_codes(cls, scores: np.ndarray, codes: np.ndarray) -> PesqResult:
        return cls(np.asarray(scores, np.float64), tuple(None if c < 0 else FAILURE_KINDS[c] for c in codes.tolist()))


class PesqHandle:
    """A batch's scores on their way; ``result()`` waits for them."""

    def __init__(self, futures: list[Future] | None = None, result: PesqResult | None = None) -> None:
        self._futures = futures or []
        self._result = result

    def done(self) -> bool:
        return self._result is not None or all(future.done() for future in self._futures)

    def result(self, timeout: float | None = None) -> PesqResult:
        if self._result is None:
            self._result = PesqResult.from_scores([future.result(timeout) for future in self._futures])
        return self._result


def _host_copies(*tensors: Tensor) -> tuple[list[Tensor], Callable[[], None]]:
    """The tensors on the CPU (audio ``[B, 1, T]`` or ``[B, T]`` as fp32 ``[B, T]``, others as they
    are), and a call that waits for the copies.

    On CUDA the copies are queued behind the generator's forward and this returns at once, so the
    training thread does not stall; a feeding thread waits for the copies instead."""
    flat = [t.detach().reshape(t.shape[0], -1).float() if t.dim() > 1 else t.detach() for t in tensors]
    if not any(t.is_cuda for t in flat):
        return [t.cpu() for t in flat], lambda: None
    hosts = []
    for tensor in flat:
        host = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
        host.copy_(tensor, non_blocking=True)
        hosts.append(host)
    copied = torch.cuda.Event()
    copied.record()
    return hosts, copied.synchronize


def to_device_without_waiting(tensor: Tensor, device: torch.device | str) -> Tensor:
    """A CPU tensor (PESQ scores) on ``device``. To a GPU through pinned memory, asynchronously: a copy from
    ordinary host memory would wait for all the work queued on the device first."""
    device = torch.device(device)
    if device.type != "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


class PesqPool:
    """Scores ``(clean, estimate)`` batches with ``pesq.pesq(sample_rate, ref, deg, mode)``, one clip per call.

    Args:
        processes: worker processes; ``None`` = ``default_worker_count()``; 0 = inline, blocking.
        sample_rate: Hz (16000 for wideband, 8000 or 16000 for narrowband).
        mode: ``wb`` or ``nb``.
        limits: the longest clip accepted and each clip's time bound (``PesqLimits``; ``None`` = its defaults).
    """

    def __init__(
        self,
        processes: int | None = None,
        sample_rate: int = 16000,
        mode: str = "wb",
        limits: PesqLimits | None = None,
    ) -> None:
        if (sample_rate, mode) not in ((16000, "wb"), (16000, "nb"), (8000, "nb")):
            raise ValueError(
                f"PESQ supports mode 'wb' at 16000 Hz and 'nb' at 8000 or 16000 Hz, got {mode!r} at {sample_rate} Hz."
            )
        if processes is not None and processes < 0:
            raise ValueError(f"processes must be >= 0 (0 scores inline) or None, got {processes}.")
        self.processes = default_worker_count() if processes is None else processes
        self.sample_rate, self.mode = sample_rate, mode
        self.limits = PesqLimits() if limits is None else limits
        self._state = WorkerSet(self.processes, sample_rate, mode, self.limits)
        self._finalizer = weakref.finalize(self, self._state.close)  # also runs at interpreter exit

    def submit(self, reference: Tensor, estimate: Tensor, length: Tensor | None = None) -> PesqHandle:
        """Start scoring ``estimate`` against ``reference`` (``[B, 1, T]``), each clip cut to ``length[i]``
        samples (``[B]``; default ``T``). Returns at once unless the pool is inline."""
        if self._state.closed:
            raise RuntimeError("This PesqPool is closed; create a new one to score more clips.")
        if reference.shape != estimate.shape:
            raise ValueError(
                f"reference {tuple(reference.shape)} and estimate {tuple(estimate.shape)} differ in shape."
            )
        if length is None:
            length = torch.full((reference.shape[0],), reference.shape[-1], dtype=torch.long)
        (references, estimates, lengths), ready = _host_copies(reference, estimate, length)
        clips = [Clip(r, e, lengths, row, ready, Future()) for row, (r, e) in enumerate(zip(references, estimates))]
        if self.processes == 0:
            ready()
            max_samples = self.limits.max_samples(self.sample_rate)
            scores = [score_clip(*clip.samples(), self.sample_rate, self.mode, max_samples) for clip in clips]
            return PesqHandle(result=PesqResult.from_scores(scores))
        for clip in clips:
            self._state.clips.put(clip)
        return PesqHandle([clip.future for clip in clips])

    def score(self, reference: Tensor, estimate: Tensor, length: Tensor | None = None) -> PesqResult:
        """``submit(...).result()``."""
        return self.submit(reference, estimate, length).result()

    @property
    def worker_pids(self) -> list[int]:
        return [worker.process.pid for worker in self._state.workers]

    @property
    def replaced_workers(self) -> int:
        """Workers replaced after they died or exceeded a clip's time bound, since the pool started."""
        return self._state.replaced_workers

    @property
    def closed(self) -> bool:
        return self._state.closed

    def close(self) -> None:
        """Stop the workers (idempotent). Clips still queued get ``worker_died``."""
        self._finalizer()

    def __enter__(self) -> PesqPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __reduce__(self) -> None:
        raise TypeError("A PesqPool owns worker processes and cannot be pickled or copied; create one per process.")
