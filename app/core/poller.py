"""``Poller``: the background thread that re-reads a table at an interval.

Why: each server keeps in-memory copies of what other servers write (the catalog,
the erased users, the running experiment, the production versions) in step by
polling. What each poll reads and merges is its own; the thread around it is the
same every time, so it lives here once: a daemon thread, a stop event that also
ends the wait between two polls, and a loop that a failed poll does not end (the
failure is logged and the next interval retries).

Starting does not poll: an owner polls once in its own ``start`` first, so that
the server answers with a fresh copy from its first request; the thread's first
poll is one interval later.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Poller:
    """Calls ``poll`` every ``interval_s`` on a thread named ``name`` until ``stop``."""

    def __init__(self, name: str, poll: Callable[[], object], interval_s: float) -> None:
        self.name = name
        self.poll = poll
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """Started and not stopped since."""
        return self._thread is not None

    def start(self) -> None:
        """Start the thread (no-op while it runs): the first poll is one interval away."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the thread, waiting for a poll in progress (at most two intervals, 5 s or more)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, 2 * self.interval_s))
            self._thread = None

    def _run(self) -> None:
        # A failure that repeats (a defect, a table gone) would otherwise write its whole
        # traceback every interval, every few seconds for as long as it lasts: the first
        # one is logged whole, the same one again as a line with its count, and the
        # recovery says how many polls failed.
        failing: str | None = None
        repeats = 0
        while not self._stop.wait(self.interval_s):
            try:
                self.poll()
            except Exception as exc:  # the thread must outlive any one poll
                what = f"{type(exc).__name__}: {exc}"
                if what != failing:
                    failing, repeats = what, 1
                    log.exception("%s: poll failed; will retry at the next interval", self.name)
                else:
                    repeats += 1
                    log.warning("%s: poll failed again (%d in a row): %s", self.name, repeats, what)
                continue
            if failing is not None:
                log.warning("%s: polling again after %d failed polls", self.name, repeats)
                failing, repeats = None, 0
