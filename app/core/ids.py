"""Random ids for every request: request ids and recommendation ids.

Why not ``uuid.uuid4()`` per id: each call is a ``getrandom`` system call plus
a ``UUID`` object, and the serving path makes two per request (the
``X-Request-ID`` and the ``recommendation_id``), on the event loop thread;
``str(uuid.uuid4())`` cost 8.4 us on this project's CPU (docs/performance.md,
"Per-request CPU of the mix, by thread"). Here one system call draws the randomness of 256
ids, and an id is a slice of it, formatted. The ids stay as unguessable as
``uuid4``'s (the same kernel randomness, 122 random bits in a version-4 UUID),
so a client cannot name another client's recommendation.

A forked child must not hand out its parent's undrawn bytes, so the pool is
emptied after ``fork``.
"""

from __future__ import annotations

import os
import threading

_IDS_PER_DRAW = 256


class RandomIdPool:
    """Draws ``os.urandom`` in blocks and cuts 16-byte ids from them; thread-safe."""

    def __init__(self, ids_per_draw: int = _IDS_PER_DRAW) -> None:
        self._size = 16 * ids_per_draw
        self._lock = threading.Lock()
        self._block = b""
        self._at = 0

    def take(self) -> bytes:
        """16 fresh random bytes, never handed out before (in this process)."""
        with self._lock:
            if self._at >= len(self._block):
                self._block = os.urandom(self._size)
                self._at = 0
            at = self._at
            self._at = at + 16
            return self._block[at : at + 16]

    def forget(self) -> None:
        """Drop the undrawn bytes (a forked child would otherwise share them)."""
        self._block = b""
        self._at = 0
        self._lock = threading.Lock()


_pool = RandomIdPool()
os.register_at_fork(after_in_child=_pool.forget)


def hex_id() -> str:
    """32 lowercase hex digits (an ``X-Request-ID``, as ``uuid4().hex`` gives)."""
    return _pool.take().hex()


def uuid4_str() -> str:
    """A random version-4 UUID in its 36-character form, as ``str(uuid.uuid4())`` gives."""
    raw = bytearray(_pool.take())
    # RFC 9562 section 5.4: version 4 in the top nibble of octet 6, variant 0b10 in the
    # top bits of octet 8 (``uuid.UUID(bytes=..., version=4)`` does the same, 4x slower).
    raw[6] = raw[6] & 0x0F | 0x40
    raw[8] = raw[8] & 0x3F | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
