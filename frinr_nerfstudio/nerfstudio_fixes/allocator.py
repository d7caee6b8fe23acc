"""Large freed CPU buffers stay in the process for the next step, instead of going back to the kernel.

glibc's malloc serves a block above its mmap threshold (which adapts, but never past 32 MB) with fresh pages from
the kernel and unmaps them on free. A training step on the CPU frees and reallocates buffers larger than that every
time (frinr-ngp's 64 MB hash-table gradient; every 16th step also the occupancy-grid refresh's 34 MB of hash
features), so every step faulted in at least 16 384 new pages: zeroing the 64 MB gradient took 34 ms instead of
5 ms, and a frinr-ngp step on a real capture ran ~10 % longer (BENCHMARKS.md, notes at the top). Raising the mmap
and trim thresholds to 1 GB lets such blocks be reused from the heap. The cost: a process keeps up to that much
freed memory resident.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

KEEP_BYTES = 1 << 30
"""Blocks up to this size come from (and return to) the heap; freed memory up to this size is not trimmed."""
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
"""glibc's ``mallopt`` parameters (malloc.h)."""


def reuse_large_blocks() -> bool:
    """Set glibc's mmap and trim thresholds to :data:`KEEP_BYTES` for this process; whether it was set (False where
    the C library is not glibc, e.g. macOS or musl, which keep their own behaviour)."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    return bool(libc.mallopt(M_MMAP_THRESHOLD, KEEP_BYTES)) and bool(libc.mallopt(M_TRIM_THRESHOLD, KEEP_BYTES))
