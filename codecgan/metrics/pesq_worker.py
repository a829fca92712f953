"""One PESQ worker process: reads ``(reference, estimate)`` pairs from stdin, writes ``(score, failure)``.

This file is run as a script (``python pesq_worker.py 16000 wb``) by ``codecgan.metrics.pesq_pool``
and imports neither torch nor codecgan. Why a script and not a ``multiprocessing`` target: a
``spawn`` or ``forkserver`` child re-imports the parent's ``__main__`` (the ``codecgan`` command,
hence torch and Lightning: 5-7 s and about 750 MB resident per worker, measured on a 2-core VM),
and ``fork`` copies a multi-threaded, possibly CUDA-initialised trainer. This script starts and
scores its first clip in about 0.15 s.

``score_clip`` is also the in-process ("inline") scorer, so both paths classify failures alike.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys

import numpy as np

# Why a clip has no score. `worker_died` is assigned by the pool, never by `score_clip`: the worker
# died, hung past the timeout, or was stopped (the pool closed) before it scored the clip.
FAILURE_KINDS = ("no_utterances", "too_short", "nonfinite_or_silent_estimate", "other", "worker_died")


def score_clip(reference: np.ndarray, estimate: np.ndarray, sample_rate: int, mode: str) -> tuple[float, str | None]:
    """PESQ (P.862.2 MOS-LQO for ``wb``) of ``estimate`` against ``reference``, both ``[T]`` float.

    Returns ``(score, None)``, or ``(nan, kind)`` with ``kind`` in ``FAILURE_KINDS``:
    ``too_short`` below a quarter second (checked before calling: the library raises
    BufferTooShortError there), ``nonfinite_or_silent_estimate`` for an estimate holding NaN/inf or
    only zeros (the library raises a plain ValueError, not a PesqError, or returns NaN),
    ``no_utterances`` when the library finds no speech in the reference, ``other`` for anything else.
    """
    from pesq import NoUtterancesError, pesq

    if min(len(reference), len(estimate)) < sample_rate // 4:
        return float("nan"), "too_short"
    if not np.all(np.isfinite(estimate)) or not np.any(estimate):
        return float("nan"), "nonfinite_or_silent_estimate"
    try:
        score = float(pesq(sample_rate, reference, estimate, mode))
    except NoUtterancesError:
        return float("nan"), "no_utterances"
    except ValueError:
        # "cannot convert float NaN to integer": the estimate's power underflowed to zero.
        return float("nan"), "nonfinite_or_silent_estimate"
    except Exception:  # noqa: BLE001 - any library failure is a counted failure, never a crash
        return float("nan"), "other"
    if not np.isfinite(score):
        return float("nan"), "nonfinite_or_silent_estimate"
    return score, None


def serve(sample_rate: int, mode: str) -> None:
    """Score pickled ``(reference, estimate)`` pairs from stdin until it closes (the pool shut down
    or its process died), writing one pickled ``(score, failure)`` per pair to the original stdout."""
    # Ctrl-C reaches the whole process group; only the trainer should react, then close the pool.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    results = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything the library prints goes to stderr, never into the result stream
    requests = sys.stdin.buffer
    while True:
        try:
            reference, estimate = pickle.load(requests)
        except EOFError:
            return
        pickle.dump(score_clip(reference, estimate, sample_rate, mode), results)
        results.flush()


if __name__ == "__main__":
    serve(int(sys.argv[1]), sys.argv[2])
