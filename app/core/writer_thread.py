"""``WriterThread``: one writer thread, started by the first piece of work, ended by a close.

Why: ``GroupCommit`` (interaction rows, acknowledged after their commit) and
``RedisWriteBehind`` (cached states, which may be lost) each queue work under a
condition for a thread of their own, and stop it the same way: mark the writer
closing, wake the thread, wait a bounded time for it to end. That mechanism lives
here once.

What closing means for the work still queued does not, because it differs:
``GroupCommit``'s thread commits and acknowledges everything queued before it ends
and new work is refused (nothing acknowledged is lost); ``RedisWriteBehind``'s
thread ends at once, its ``close`` writes what is pending from the caller's thread,
and new work is dropped (a lost state costs a refold). The impression writer and
the access-log thread stop in ways of their own (an event that a restart clears; a
sentinel behind the queued records) and do not use this.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod


class WriterThread(ABC):
    """``_cond`` guards the subclass's queue and ``_closing``; ``_run`` is the thread."""

    def __init__(self, thread_name: str) -> None:
        self._thread_name = thread_name
        self._cond = threading.Condition()
        self._closing = False  # set once by ``_close_thread``; the thread ends on it
        self._thread: threading.Thread | None = None

    def _start_thread(self) -> None:
        """Start the writer thread unless it was started; the caller holds ``_cond``."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self._thread_name, daemon=True)
            self._thread.start()

    def _close_thread(self, timeout_s: float) -> None:
        """Mark the writer closing, wake its thread, wait up to ``timeout_s`` for it to end."""
        with self._cond:
            self._closing = True
            # Every waiter, not one: a subclass may have callers waiting on ``_cond``
            # beside its thread (``DeferredRecheck.drain``), and a lone ``notify`` could
            # wake one of them instead of the thread, which would then sleep on.
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout_s)

    @abstractmethod
    def _run(self) -> None:
        """The thread: wait on ``_cond`` for work, write it, return once ``_closing``."""
