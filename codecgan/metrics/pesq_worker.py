"""One PESQ worker process: reads ``(reference, estimate)`` pairs from stdin, writes ``(score, failure)``.

This file is run as a script (``python pesq_worker.py 16000 wb``) by ``codecgan.metrics.pesq_pool``
and imports neither torch nor codecgan. Why a script and not a ``multiprocessing`` target: a
``spawn`` or ``forkserver`` child re-imports the parent's ``__main__`` (the ``codecgan`` command,
hence torch and Lightning: 5-7 s and about 750 MB resident per worker, measured on a 2-core VM),
and ``fork`` copies a multi-threaded, possibly CUDA-initialised trainer. This script starts and
scores its first clip in about 0.15 s.

``score_clip`` is also the in-process ("inline") scorer, so both paths classify failures alike. The pool
refuses a hostile clip (``refusal``) before it sends it here; the worker's own check costs microseconds.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys

import numpy as np

# Why a clip has no score. Refused before the library runs (``refusal``): ``too_short`` (under a quarter second,
# where the library raises BufferTooShortError), ``too_long`` (over ``PesqLimits.max_clip_seconds``: the library's
# cost grows faster than the length and it crashes near 93 s), ``nonfinite`` (NaN or +-inf in the reference or the
# estimate: the library would raise a ValueError or report no utterance), ``silent_estimate`` (all zeros, or a
# power that underflows to zero inside the library). From the library: ``no_utterances`` (no speech found in the
# reference, e.g. an all-zero one) and ``other``. Assigned by the pool, never by ``score_clip``: ``timeout`` (the
# worker exceeded the clip's time bound and was replaced) and ``worker_died`` (it crashed, or the pool closed first).
# The order is part of the checkpoint format (``PendingPesq`` stores indices into it): new kinds go at the end.
FAILURE_KINDS = (
    "no_utterances",
    "too_short",
    "nonfinite",
    "other",
    "worker_died",
    "silent_estimate",
    "too_long",
    "timeout",
)


def refusal(reference: np.ndarray, estimate: np.ndarray, sample_rate: int, max_samples: int | None) -> str | None:
    """The failure kind of a clip that must not reach the library, or None. ``reference`` and ``estimate`` are
    ``[T]``; ``max_samples`` None sets no upper bound. The length is checked before the samples are read, so a
    clip of hours costs nothing. Clipped (+-1) or DC-only audio is not refused: the library scores it."""
    if min(len(reference), len(estimate)) < sample_rate // 4:
        return "too_short"
    if max_samples is not None and max(len(reference), len(estimate)) > max_samples:
        return "too_long"
    if not (np.isfinite(reference).all() and np.isfinite(estimate).all()):
        return "nonfinite"
    if not np.any(estimate):
        return "silent_estimate"
    return None


def score_clip(
    reference: np.ndarray, estimate: np.ndarray, sample_rate: int, mode: str, max_samples: int | None = None
) -> tuple[float, str | None]:
    """PESQ (P.862.2 MOS-LQO for ``wb``) of ``estimate`` against ``reference``, both ``[T]`` float.

    Returns ``(score, None)``, or ``(nan, kind)`` with ``kind`` in ``FAILURE_KINDS`` (a ``refusal`` or the
    library's failure). Any exception of the library is a counted failure, never a crash; a crash of the
    library's C code (a segmentation fault) ends the process, which the pool counts as ``worker_died``.
    """
    from pesq import NoUtterancesError, pesq

    kind = refusal(reference, estimate, sample_rate, max_samples)
    if kind is not None:
        return float("nan"), kind
    try:
        score = float(pesq(sample_rate, reference, estimate, mode))
    except NoUtterancesError:
        return float("nan"), "no_utterances"
    except ValueError:
        # "cannot convert float NaN to integer": the estimate's power underflowed to zero (e.g. 1e-30 noise).
        return float("nan"), "silent_estimate"
    except Exception:  # noqa: BLE001 - any library failure is a counted failure, never a crash
        return float("nan"), "other"
    if not np.isfinite(score):
        return float("nan"), "silent_estimate"
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
