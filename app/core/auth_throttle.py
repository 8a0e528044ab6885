"""Failed admin-token attempts, counted per client address, and a lockout when they pile up.

The admin API (``Authorization: Bearer``) and the dashboard's login form both
take the admin token. A wrong token is a 401 either way; without a limit a
client could try tokens as fast as the server answers. After
``max_failures`` wrong or missing tokens from one address within
``window_s`` seconds, every admin or login request from that address is a
429 with ``Retry-After`` until the oldest of those failures leaves the
window, the right token included (an attacker who guesses right while
locked out learns nothing). A success clears the address's failures.

Per process and in memory, on purpose: no database or cache round trip on
the admin path, and a restart forgets (a lockout is a brake, not a ban).
With N replicas a client gets N times the attempts; a proxy in front of
them can limit more strictly. The address is the one uvicorn reports,
which honours ``X-Forwarded-For`` only from ``--forwarded-allow-ips``.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

#: Addresses tracked at most; beyond it the oldest-touched are forgotten (bounded memory).
MAX_TRACKED = 10_000


class AuthThrottle:
    """Sliding-window failure counter per client address; thread-safe."""

    def __init__(
        self,
        max_failures: int = 10,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.clock = clock
        self._lock = threading.Lock()
        self._failures: dict[str, deque[float]] = {}  # insertion order = least recently touched

    def retry_after(self, client: str) -> int | None:
        """Seconds until ``client`` may try again, or None when it is not locked out."""
        if self.max_failures <= 0:
            return None
        with self._lock:
            times = self._recent(client)
            if times is None or len(times) < self.max_failures:
                return None
            oldest = times[len(times) - self.max_failures]
            return max(1, math.ceil(oldest + self.window_s - self.clock()))

    def failed(self, client: str) -> None:
        """Count one wrong or missing token from ``client``."""
        if self.max_failures <= 0:
            return
        with self._lock:
            times = self._recent(client) or deque(maxlen=self.max_failures)
            times.append(self.clock())
            self._failures.pop(client, None)
            self._failures[client] = times  # most recently touched last
            while len(self._failures) > MAX_TRACKED:
                del self._failures[next(iter(self._failures))]

    def succeeded(self, client: str) -> None:
        """The right token: forget ``client``'s failures."""
        with self._lock:
            self._failures.pop(client, None)

    def _recent(self, client: str) -> deque[float] | None:
        times = self._failures.get(client)
        if times is None:
            return None
        horizon = self.clock() - self.window_s
        while times and times[0] <= horizon:
            times.popleft()
        if not times:
            del self._failures[client]
            return None
        return times
