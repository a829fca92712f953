"""The PESQ pool's machinery: one ``pesq_worker.py`` process per slot, each fed by one thread here.

A feeder thread takes the next queued clip, waits for its host copy, refuses it if PESQ must not
see it (``pesq_worker.refusal``: too short or long, NaN/inf, a silent estimate), else writes it to its
worker's stdin and waits on the worker's stdout; it releases the GIL while it waits, so the training
thread keeps running. A worker that died between clips is replaced before its next clip. Sending a
clip and waiting for its score share one deadline (``PesqLimits.timeout_for``), so even a worker that
stops reading its stdin cannot hold a feeder: past the deadline the worker is killed and replaced and
the clip gets ``timeout``; a worker that dies on a clip is replaced and the clip gets ``worker_died``.
"""

from __future__ import annotations

import os
import pickle
import queue
import select
import subprocess
import sys
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from torch import Tensor

from codecgan.metrics.pesq_limits import PesqLimits
from codecgan.metrics.pesq_worker import refusal

WORKER_SCRIPT = Path(__file__).with_name("pesq_worker.py")
Score = tuple[float, "str | None"]


@dataclass
class Clip:
    """One clip waiting for a worker: ``[T]`` views into a host copy, the host copy of the batch's
    lengths and this clip's row in it, a call that waits until those copies have landed, and the
    future its ``(score, failure)`` goes to. The clip is cut to its length only after ``ready()``, in
    the feeding thread, so the training thread never waits for the copies."""

    reference: Tensor
    estimate: Tensor
    lengths: Tensor
    row: int
    ready: Callable[[], None]
    future: Future

    def samples(self) -> tuple[np.ndarray, np.ndarray]:
        """Reference and estimate cut to the clip's length; call after ``ready()``."""
        length = int(self.lengths[self.row])
        return self.reference[:length].numpy(), self.estimate[:length].numpy()


class WorkerProcess:
    """One ``pesq_worker.py`` process, fed one pickled clip at a time through its stdin."""

    def __init__(self, sample_rate: int, mode: str) -> None:
        isolate = ["-P"] if sys.version_info >= (3, 11) else []  # keep the script's folder off sys.path
        single_thread = dict.fromkeys(("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"), "1")
        self.process = subprocess.Popen(
            [sys.executable, *isolate, str(WORKER_SCRIPT), str(sample_rate), mode],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**os.environ, **single_thread},
            # Its own session: Ctrl-C in the terminal reaches the trainer only, which then closes the pool.
            start_new_session=True,
        )
        # Written without blocking, so a worker that stops reading cannot hold the feeder past its deadline.
        os.set_blocking(self.process.stdin.fileno(), False)

    def alive(self) -> bool:
        return self.process.poll() is None

    def score(self, reference: np.ndarray, estimate: np.ndarray, timeout: float) -> Score:
        """The worker's ``(score, failure)``. If the clip is not sent and answered within ``timeout`` s, the worker
        is killed and the clip gets ``(nan, "timeout")``; if the worker dies first, ``(nan, "worker_died")``."""
        deadline = time.monotonic() + timeout
        try:
            request = pickle.dumps((reference, estimate), protocol=pickle.HIGHEST_PROTOCOL)
            if self._send(request, deadline) and self._wait_readable(deadline):
                return pickle.load(self.process.stdout)
            failure = "timeout"
        except (OSError, ValueError, EOFError, pickle.UnpicklingError):
            failure = "worker_died"
        self.stop(grace=0.0)
        return float("nan"), failure

    def _send(self, request: bytes, deadline: float) -> bool:
        """Write ``request`` to the worker's stdin; False if the deadline passes first."""
        stdin, view = self.process.stdin.fileno(), memoryview(request)
        while view:
            if not select.select([], [stdin], [], max(0.0, deadline - time.monotonic()))[1]:
                return False
            try:
                written = os.write(stdin, view)
            except BlockingIOError:  # the pipe filled between select and write
                written = 0
            view = view[written:]
        return True

    def _wait_readable(self, deadline: float) -> bool:
        """Whether the worker answered (or closed its stdout) before the deadline."""
        return bool(select.select([self.process.stdout], [], [], max(0.0, deadline - time.monotonic()))[0])

    def stop(self, grace: float = 1.0) -> None:
        """Close its stdin (it exits at end of input), kill it after ``grace`` s, and reap it."""
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except (OSError, ValueError):
                pass
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.process.wait()


class WorkerSet:
    """``processes`` workers and their feeder threads, sharing one queue of clips. The pool's finalizer
    holds this object, not the pool, so garbage collection of the pool can trigger ``close``."""

    def __init__(self, processes: int, sample_rate: int, mode: str, limits: PesqLimits) -> None:
        self.sample_rate, self.mode, self.limits = sample_rate, mode, limits
        self.owner_pid = os.getpid()
        self.lock = threading.Lock()
        self.closed = False
        self.replaced_workers = 0
        self.clips: queue.Queue[Clip | None] = queue.Queue()
        self.workers = [WorkerProcess(sample_rate, mode) for _ in range(processes)]
        self.threads = [
            threading.Thread(target=self.serve, args=(slot,), name=f"pesq-feeder-{slot}", daemon=True)
            for slot in range(processes)
        ]
        for thread in self.threads:
            thread.start()

    def serve(self, slot: int) -> None:
        while (clip := self.clips.get()) is not None:
            if not clip.future.set_running_or_notify_cancel():
                continue
            try:
                clip.ready()
                clip.future.set_result(self.score_on(slot, *clip.samples()))
            except BaseException as error:  # a future left unresolved would hang the training step
                clip.future.set_exception(error)

    def score_on(self, slot: int, reference: np.ndarray, estimate: np.ndarray) -> Score:
        kind = refusal(reference, estimate, self.sample_rate, self.limits.max_samples(self.sample_rate))
        if kind is not None:  # checked here, so the worker never gets a clip that would crash or stall it
            return float("nan"), kind
        if not self.workers[slot].alive():  # died between clips: replace it, the clip is not lost
            self.replace(slot)
        timeout = self.limits.timeout_for(len(estimate), self.sample_rate)
        score = self.workers[slot].score(reference, estimate, timeout)
        if score[1] in ("timeout", "worker_died"):
            self.replace(slot)
        return score

    def replace(self, slot: int) -> None:
        with self.lock:
            if not self.closed:
                self.workers[slot].stop(grace=0.0)
                self.workers[slot] = WorkerProcess(self.sample_rate, self.mode)
                self.replaced_workers += 1

    def close(self) -> None:
        """Fail queued clips as ``worker_died``, let each thread finish its clip, stop and reap every worker."""
        with self.lock:
            if self.closed or os.getpid() != self.owner_pid:  # a forked child must not stop our workers
                return
            self.closed = True
        while True:
            try:
                clip = self.clips.get_nowait()
            except queue.Empty:
                break
            if clip is not None and clip.future.set_running_or_notify_cancel():
                # Resolved, not cancelled: a checkpoint saved after the pool closed (a crash
                # handler) still gets a result of the right shape for every clip.
                clip.future.set_result((float("nan"), "worker_died"))
        for _ in self.threads:
            self.clips.put(None)
        for slot, thread in enumerate(self.threads):
            thread.join(timeout=5.0)
            if thread.is_alive():  # waiting on a hung worker: killing it ends the wait
                self.workers[slot].process.kill()
                thread.join(timeout=5.0)
        for worker in self.workers:
            worker.stop()
