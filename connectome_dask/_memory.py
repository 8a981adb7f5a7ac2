"""Handing the memory a large result's temporaries freed back to the operating system.

A whole-brain result (``fetch_adjacencies(None, None)``: 4.8 M rows at 20 M
synapses) is built from a few hundred MB of row-sized temporaries. Freed, they
stay in the process: glibc keeps blocks under its mmap threshold (which rises
to 32 MB as large arrays are freed) in its arenas, one per thread that
allocated them, and Arrow's allocator keeps freed pages for reuse. The next
such call then starts on top of them: measured at 20 M synapses, the resident
size before a repeated call grew from 196 MB to 415-555 MB and each call's
peak from 540 MB to 715-772 MB; releasing before each call (the previous
result dropped) kept them at 313-347 MB and 662-681 MB, for 2-5 ms a call.

No dependency offers this: dask's documentation gives the same ``malloc_trim``
call as a snippet for workers (its nannies set ``MALLOC_TRIM_THRESHOLD_``
instead), and pyarrow's :meth:`pyarrow.MemoryPool.release_unused` covers
Arrow's pool only. Nothing here imports from the rest of the package.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

__all__ = ["release_unused_memory"]

log = logging.getLogger("connectome_dask")


@functools.cache
def _malloc_trim() -> Callable[[int], Any] | None:
    """glibc's ``malloc_trim``, or ``None`` where the C library has none (macOS, Windows, musl)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        fn = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return fn


def release_unused_memory() -> float:
    """Return freed heap memory to the operating system: Arrow's pool, then glibc's arenas.

    Only memory that is already free is released; nothing live is touched.
    Call it after a step whose temporaries were large (hundreds of MB), not
    after every small query: it walks every arena (a few milliseconds).

    Returns
    -------
    float
        Seconds it took.

    Examples
    --------
    >>> seconds = release_unused_memory()
    >>> seconds >= 0
    True
    """
    t0 = time.perf_counter()
    pa = sys.modules.get("pyarrow")
    if pa is not None:
        pa.default_memory_pool().release_unused()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
    dt = time.perf_counter() - t0
    log.debug("released unused heap memory to the OS in %.1f ms", dt * 1e3)
    return dt
