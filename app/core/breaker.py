"""``CircuitBreaker``: stop calling a dependency that keeps failing, and probe it now and then.

Why: a hung Redis (frozen process, black-holed network) answers nothing, so
every call waits its full socket timeout; with the cache on the write path
(invalidation after each logged interaction) that timeout lands on every
request. After ``failure_threshold`` consecutive failures the breaker *opens*:
callers skip the dependency at once. After ``interval`` one caller is let
through as a probe (*half-open*); its success closes the breaker, its failure
reopens it with the interval doubled, up to ``max_interval_s``. So a dead
cache costs one timeout per interval instead of one per request, and a
recovered one is used again within the interval.

The clock is injected so tests step time instead of sleeping.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from enum import IntEnum


class BreakerState(IntEnum):
    """Values of the state gauge (``genrec_cache_breaker_state``)."""

    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


class CircuitBreaker:
    """Thread-safe breaker: ``allow()`` before a call, then ``success()`` or ``failure()``."""

    def __init__(
        self,
        failure_threshold: int = 2,
        base_interval_s: float = 0.5,
        max_interval_s: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[BreakerState], None] | None = None,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self.failure_threshold = failure_threshold
        self.base_interval_s = base_interval_s
        self.max_interval_s = max_interval_s
        self._clock = clock
        self._on_change = on_change
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._failures = 0  # consecutive, while closed
        self._interval = base_interval_s
        self._open_until = 0.0

    @property
    def state(self) -> BreakerState:
        return self._state

    @property
    def interval_s(self) -> float:
        """How long the breaker stays open the next (or current) time."""
        return self._interval

    def _read_state(self) -> BreakerState:
        """The state as of now (a call, so the checker does not carry over an earlier narrowing)."""
        return self._state

    def allow(self) -> bool:
        """True: make the call (closed, or this caller is the probe). False: skip it."""
        if self._state is BreakerState.CLOSED:
            return True  # the common case, without the lock
        with self._lock:
            state = self._read_state()  # another caller may have changed it meanwhile
            if state is BreakerState.CLOSED:
                return True
            if state is BreakerState.HALF_OPEN or self._clock() < self._open_until:
                return False  # open, or a probe is already in flight
            self._set(BreakerState.HALF_OPEN)
            return True

    def success(self) -> None:
        if self._state is BreakerState.CLOSED and self._failures == 0:
            return  # the common case: nothing to reset, no lock taken
        with self._lock:
            self._failures = 0
            self._interval = self.base_interval_s
            if self._state is not BreakerState.CLOSED:
                self._set(BreakerState.CLOSED)

    def failure(self) -> None:
        with self._lock:
            if self._state is BreakerState.HALF_OPEN:  # the probe failed: wait longer
                self._interval = min(self._interval * 2, self.max_interval_s)
                self._open()
                return
            self._failures += 1
            if self._state is BreakerState.CLOSED and self._failures >= self.failure_threshold:
                self._open()

    def _open(self) -> None:
        self._open_until = self._clock() + self._interval
        self._failures = 0
        self._set(BreakerState.OPEN)

    def _set(self, state: BreakerState) -> None:
        self._state = state
        if self._on_change is not None:
            self._on_change(state)
