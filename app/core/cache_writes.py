"""Write-behind for the Redis tier: new states reach Redis from a thread of their own.

Why: a batch that folds a user in (a new user's first list, any list after the user's
log grew) stored the new states in Redis before answering: a round trip on the model's
scoring thread, which waited on the socket and then on the GIL to parse the reply while
the batch's requests waited on it. In a GIL profile of the serve benchmark's mix on
Postgres + Redis that write was the largest single cost the mix's scoring thread pays
and known-user lists do not (0.025 ms of GIL per mix request; docs/performance.md,
"The Redis write of a refolded state off the scoring thread", which also says how
little it bought). The memory tier holds the state at once, so this process never
needs Redis to have it; Redis is for the other replicas and for a restart, which can
wait a few milliseconds and, if a write is lost, refold (a state is used only while
its stamp matches the log, so a late or lost write can cost a recomputation, never an
answer). Writes arriving late is also why Redis now keeps the larger stamp
(``RedisCache.write_fields``).

How: ``put`` keeps the newest entry per (user, model, version) in a pending map (the
larger stamp wins: a stamp grows with every logged row); the first entry of a window
wakes the writer thread, which waits ``interval_s`` for more to gather, then writes
everything pending in one round trip (``RedisCache.write_fields``: one atomic script,
HSET + EXPIRE per entry unless Redis holds a larger stamp). While Redis is down the writes fail like any other call (the breaker
skips them); entries beyond ``max_pending`` are dropped and counted
(``genrec_cache_writes_dropped_total``). ``flush`` writes what is pending now;
``close`` writes it and stops the thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from app.core.metrics import Metrics
from app.core.writer_thread import WriterThread

if TYPE_CHECKING:
    from app.core.cache import CacheEntry, RedisCache

log = logging.getLogger(__name__)

#: How long the writer lets entries gather before a round trip: a replica that asks for a
#: state within this time after another computed it refolds it instead.
WRITE_BEHIND_S = 0.05

_Key = tuple[str, str, str]  # (user id, model, version)


class RedisWriteBehind(WriterThread):
    """One writer thread for a ``RedisCache``'s state writes (module docstring)."""

    def __init__(
        self,
        redis: RedisCache,
        metrics: Metrics,
        interval_s: float = WRITE_BEHIND_S,
        max_pending: int = 10_000,
    ) -> None:
        super().__init__("cache-writer")
        self.redis = redis
        self.interval_s = interval_s
        self.max_pending = max_pending
        self._metrics = metrics
        self._writing = threading.Lock()  # one write at a time, in the order taken
        self._pending: dict[_Key, tuple[np.ndarray, int]] = {}

    def put(self, entries: Sequence[CacheEntry], model: str, version: str) -> None:
        """Queue ``entries`` for Redis; returns at once."""
        if not entries:
            return
        dropped = 0
        with self._cond:
            if self._closing:  # shutting down: the state is only a cache entry
                dropped = len(entries)
            else:
                idle = not self._pending  # only the first entry of a window wakes the writer
                for user_id, state, stamp in entries:
                    key = (user_id, model, version)
                    held = self._pending.get(key)
                    if held is None and len(self._pending) >= self.max_pending:
                        dropped += 1
                    elif held is None or stamp >= held[1]:
                        # a copy: the caller's array may be a view it reuses before the write
                        self._pending[key] = (np.array(state, dtype=np.float32), stamp)
                self._start_thread()
                if idle:
                    self._cond.notify()
        if dropped:
            self._metrics.cache_writes_dropped.inc(dropped)

    def discard(self, user_ids: Sequence[str]) -> None:
        """Drop the pending entries of ``user_ids`` (their data was erased)."""
        gone = set(user_ids)
        with self._cond:
            for key in [key for key in self._pending if key[0] in gone]:
                del self._pending[key]

    def flush(self) -> None:
        """Write what is pending now, in the caller's thread."""
        with self._writing:
            self._write(self._take())

    def close(self, timeout_s: float = 5.0) -> None:
        """Drop what comes from now on, stop the writer thread, then write what is pending."""
        self._close_thread(timeout_s)
        self.flush()  # anything the thread had not taken (or no thread ever started)

    def _take(self) -> dict[_Key, tuple[np.ndarray, int]]:
        with self._cond:
            taken, self._pending = self._pending, {}
        return taken

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait()
                if self._closing:
                    return  # ``close`` flushes
                deadline = time.monotonic() + self.interval_s  # let a window's entries gather
                while not self._closing and (remaining := deadline - time.monotonic()) > 0:
                    self._cond.wait(remaining)
            with self._writing:
                self._write(self._take())

    def _write(self, taken: dict[_Key, tuple[np.ndarray, int]]) -> None:
        if not taken:
            return
        try:
            self.redis.write_fields(
                [
                    (user_id, model, version, state, stamp)
                    for (user_id, model, version), (state, stamp) in taken.items()
                ]
            )
        except Exception:  # write_fields answers failures itself; this is a bug, keep the thread
            log.exception("writing %d cached states to Redis failed", len(taken))
