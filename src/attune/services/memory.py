"""Keeping a server process's freed memory from staying resident (docs/performance.md "Idle RSS").

glibc serves a large ``malloc`` from a mapping of its own and unmaps it on ``free`` — until a
block that large has been freed once: then it raises its mmap threshold to that size (up to
32 MiB) and its trim threshold to twice that, so the next blocks of that size come from a malloc
arena and stay resident after ``free``. Argon2 (m = 19,456 KiB, docs/security.md) allocates one
19 MiB block per hash or verification: after the first login, every thread that has verified a
password keeps ≈ 19 MiB it no longer uses (`malloc_trim` does not return a thread arena's top).

:func:`pin_malloc_thresholds` sets both thresholds explicitly, which turns that adjustment off:
blocks of ``mmap_threshold`` bytes or more always get their own mapping, and a heap's free top
is returned beyond ``trim_threshold``. :func:`release_free_memory` hands the free pages inside
the heap back (``malloc_trim``) after a one-off peak such as the embedded server's migrations
(≈ 8 MiB of Alembic's transient objects, ≈ 3 MiB of which glibc then keeps). Elsewhere than glibc
both do nothing.
"""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger(__name__)

# <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

#: Below Argon2's 19 MiB block; above most of what a request or a workflow allocates at once.
MMAP_THRESHOLD = 1 << 20
TRIM_THRESHOLD = 4 << 20


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None)  # the C library the interpreter is linked with
    except OSError:
        return None


def pin_malloc_thresholds(mmap_threshold: int = MMAP_THRESHOLD, trim_threshold: int = TRIM_THRESHOLD) -> bool:
    """Pin glibc's mmap and trim thresholds for this process; False where that is not possible."""
    mallopt = getattr(_libc(), "mallopt", None)
    if mallopt is None:
        return False  # not glibc
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    pinned = bool(mallopt(M_MMAP_THRESHOLD, mmap_threshold)) and bool(
        mallopt(M_TRIM_THRESHOLD, trim_threshold)
    )
    if not pinned:
        log.debug("mallopt refused the mmap/trim thresholds %d/%d", mmap_threshold, trim_threshold)
    return pinned


def release_free_memory() -> bool:
    """Return the C heap's free pages to the system (glibc ``malloc_trim``): whether any were."""
    malloc_trim = getattr(_libc(), "malloc_trim", None)
    if malloc_trim is None:
        return False
    malloc_trim.argtypes, malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
    return bool(malloc_trim(0))
