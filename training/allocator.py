"""Keep freed memory in the process during training, so big tensors do not page-fault.

Why: glibc's malloc serves every allocation above its mmap threshold (at most
32 MB on 64-bit) with a fresh ``mmap`` and returns it on ``free``. A training
step allocates and frees the same large tensors every time — at 20,000 items
the (I, 600) weight gradients and the (500, I) logits are 40-48 MB each — so
each step touches them as new pages, and the kernel zero-fills every page on
first touch. Measured on the development CPU (``benchmarks/cpu_kernels.py``):
``torch.zeros(20000, 600)`` took 21.8 ms fresh against 1.8 ms from reused
memory; a Mult-VAE epoch over 100,000 x 20,000 synthetic clicks went from
120.1 to 102.9 CPU s in float32 and from 85.4 to 59.4 with bf16
(docs/peers.md, with the commands).

``keep_freed_memory`` turns mmap off and raises the trim threshold
(``mallopt``), so large blocks come from the heap and are reused. The cost is
that the process keeps its peak heap until it exits, which suits a training
process; serving never calls it. It is the same effect as starting Python
with ``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=...``. Elsewhere than glibc
(macOS, musl) it does nothing. ``GENREC_KEEP_FREED_MEMORY=0`` opts out.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

log = logging.getLogger(__name__)

#: Set to 0 (false, no, off) to leave malloc as it is; ``genrec`` also takes it from ``.env``.
KEEP_FREED_MEMORY_ENV = "GENREC_KEEP_FREED_MEMORY"
#: ``mallopt`` parameters (glibc malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
#: Keep up to this much free heap before returning any to the OS.
TRIM_THRESHOLD_BYTES = 2**31 - 1  # mallopt takes an int

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Apply the setting once per process; True when glibc accepted it."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if os.environ.get(KEEP_FREED_MEMORY_ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        mallopt = getattr(libc, "mallopt", None)
    except OSError:
        mallopt = None
    if mallopt is None:
        return False
    _applied = bool(mallopt(M_MMAP_MAX, 0)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )
    if _applied:
        log.debug("malloc: mmap off, trim threshold %d bytes (training)", TRIM_THRESHOLD_BYTES)
    return _applied
