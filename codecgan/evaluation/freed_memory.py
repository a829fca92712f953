"""Keeping freed memory in the process while whole utterances are enhanced one after another (`codecgan test`).

glibc's ``malloc`` serves every block above its mmap threshold (128 KiB, rising to at most 32 MiB as large blocks
are freed) with a fresh ``mmap`` and returns it to the kernel on ``free``. A conformer's attention over a whole
utterance allocates far larger blocks: the relative-position logits of CMGAN's time attention over a 3 s utterance
(101 bins x 2 heads x 481 x 481 frames) are 187 MB. So each forward pays about 63,000 page faults to zero the same
memory again, a fifth of the tiny enhancer's forward on a CPU (``docs/performance.md``, "codecgan test speed").

``keep_freed_memory`` raises both thresholds, so such blocks come from the heap and stay there for the next
utterance; ``release_freed_memory`` restores glibc's initial thresholds and gives the heap's free memory back to
the kernel. The allocator changes where memory comes from, never a value computed in it. Elsewhere than glibc
(macOS, Windows, musl) both are no-ops.
"""

from __future__ import annotations

import ctypes
import platform

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (malloc.h)
GLIBC_INITIAL_THRESHOLD = 128 * 1024  # both thresholds' initial values, bytes
KEPT_BLOCK_BYTES = 1 << 30  # blocks up to this size come from the heap while freed memory is kept


def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(None)  # the process's own symbols, glibc's malloc among them
    except OSError:
        return None


def keep_freed_memory() -> bool:
    """Serve blocks up to ``KEPT_BLOCK_BYTES`` from the heap and keep freed memory there. Returns whether the
    allocator took the settings (False off glibc)."""
    libc = _glibc()
    if libc is None:
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, KEPT_BLOCK_BYTES)) and bool(
        libc.mallopt(M_TRIM_THRESHOLD, 2 * KEPT_BLOCK_BYTES - 1)
    )


def release_freed_memory() -> None:
    """glibc's initial thresholds again, and the heap's free memory back to the kernel (``malloc_trim``)."""
    libc = _glibc()
    if libc is None:
        return
    libc.mallopt(M_MMAP_THRESHOLD, GLIBC_INITIAL_THRESHOLD)
    libc.mallopt(M_TRIM_THRESHOLD, GLIBC_INITIAL_THRESHOLD)
    libc.malloc_trim(0)
