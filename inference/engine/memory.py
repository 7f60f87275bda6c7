"""Keeping freed activation memory in the process instead of handing it back to the kernel.

glibc's malloc serves large blocks with mmap and trims the top of its heap when enough is
free; either way a freed block goes back to the kernel, and the next block of that size is
fresh memory whose every 4 KB page faults when first touched. A 512x512 slice's activations
are 16-32 MB a layer, so each CPU forward pass mapped, faulted and released them again:
15,000-30,000 page faults a slice, about a fifth of its time. With the mmap threshold at
glibc's ceiling and trimming only above 1 GB, freed blocks stay in the heap and the next
slice reuses them. The cost is a worker that keeps what its largest job needed.
"""

from __future__ import annotations

import ctypes
import logging
import threading

logger = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1  # mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's ceiling on 64-bit systems (HEAP_MAX_SIZE / 2)
TRIM_THRESHOLD = 1024 * 1024 * 1024

_applied: bool | None = None
_lock = threading.Lock()


def retain_freed_memory() -> bool:
    """Tells glibc's malloc, once per process, to keep freed large blocks for reuse.

    Returns whether it applies: False where the C library is not glibc (musl, macOS), which
    then keeps its own behaviour."""
    global _applied
    with _lock:
        if _applied is None:
            _applied = _set(M_MMAP_THRESHOLD, MMAP_THRESHOLD) and _set(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
            if not _applied:
                logger.info("malloc keeps its defaults: the C library has no glibc mallopt")
        return _applied


def _set(parameter: int, value: int) -> bool:
    try:
        # The symbols the process has loaded, the C library's among them: no library search.
        return bool(ctypes.CDLL(None).mallopt(parameter, value))  # 1 on success
    except (OSError, AttributeError):  # no mallopt here (musl has one that does nothing: 0)
        return False
