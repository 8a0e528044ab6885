"""Impressions: which items each recommendation response showed, recorded off the request path.

A response gets a ``recommendation_id`` and its impression goes onto a bounded
in-memory queue (a few microseconds; no database round trip). One background
thread takes impressions off the queue and writes them in batches, one
multi-row INSERT per table (``repository.insert_impressions``). Shutdown
(``stop``) writes whatever is queued before the engine closes.

The writer wakes every ``flush_s`` (or as soon as ``batch_max`` impressions
wait), never once per impression: a ``queue.Queue`` wakes its consumer on
every put, and on a CPU-bound server each of those wakeups is a thread switch
and a GIL hand-over taken from the request path (they cost the embedded
server 15-25 % of its recommendation rate at 32 connections; docs/performance.md).

Impressions are analytics, not acknowledged data: when the queue is full a new
impression is dropped and counted (``genrec_impressions_dropped{reason="queue_full"}``),
a batch whose write fails is dropped and counted (``reason="write_failed"``), and a
process that is killed loses what it had queued. The response is never delayed
or failed for an impression.

Until its batch is written, an impression is also kept in ``pending`` so that
this replica's own reads (``exclude_recently_shown``, attribution of an event
that names its ``recommendation_id``) see it at once. Once a batch is committed,
the writer attributes the events other replicas logged meanwhile that name its
impressions (``after_write``: ``app.serving.late_attribution``).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app.core.db import session_scope
from app.core.ids import uuid4_str
from app.core.metrics import Metrics
from app.repository import NewImpression, insert_impressions, recently_shown

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class ImpressionRecorder:
    """Bounded queue + one writer thread; ``record`` never blocks and never raises."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        metrics: Metrics,
        *,
        enabled: bool = True,
        queue_size: int = 10_000,
        batch_max: int = 500,
        flush_s: float = 0.5,
        clock: Clock = utc_now,
        after_write: Callable[[Sequence[NewImpression]], object] | None = None,
    ) -> None:
        self.sessions = sessions
        self.metrics = metrics
        self.enabled = enabled
        self.batch_max = batch_max
        self.flush_s = flush_s
        self.clock = clock
        #: Called with each batch once it is committed, before it leaves ``pending``
        #: (late attribution, ``app.serving.late_attribution``; ``flush`` waits for it).
        self.after_write = after_write
        self.queue_size = queue_size
        self._queue: deque[NewImpression] = deque()  # guarded by _lock
        self._wake = threading.Event()  # set when a batch is full or on stop
        self._lock = threading.Lock()
        self._written = threading.Condition(self._lock)  # notified after every batch
        self._pending: dict[str, NewImpression] = {}  # queued or being written, by id
        self._pending_of: dict[str | None, dict[str, NewImpression]] = {}  # the same, by user
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- request side -------------------------------------------------------------------

    def record(
        self,
        user_id: str | None,
        kind: str,
        items: Sequence[str],
        model: str,
        version: str,
        *,
        experiment: str | None = None,
        variant: str | None = None,
        latency_ms: float | None = None,
        session_id: str | None = None,
    ) -> str:
        """A new ``recommendation_id``; its impression is queued (when enabled and not full).

        ``session_id`` (an ad-hoc request's) is kept apart from ``user_id``: a session
        id may be any string, a real user's id included.
        """
        rec_id = uuid4_str()
        if not self.enabled:
            return rec_id
        impression = NewImpression(
            rec_id,
            user_id,
            kind,
            tuple(items),
            model,
            version,
            self.clock(),
            experiment=experiment,
            variant=variant,
            latency_ms=latency_ms,
            session_id=session_id,
        )
        with self._lock:
            if len(self._queue) >= self.queue_size:
                self.metrics.impressions_dropped.labels(reason="queue_full").inc()
                return rec_id
            self._queue.append(impression)
            self._pending[rec_id] = impression
            self._pending_of.setdefault(user_id, {})[rec_id] = impression
            full = len(self._queue) >= self.batch_max
        if full:
            self._wake.set()
        return rec_id

    def pending(self, rec_id: str) -> NewImpression | None:
        """The impression ``rec_id`` if this replica has it queued (not yet written)."""
        with self._lock:
            return self._pending.get(rec_id)

    def pending_for_users(self, user_ids: set[str]) -> list[NewImpression]:
        """This replica's unwritten impressions of ``user_ids``."""
        with self._lock:
            return [p for u in user_ids for p in self._pending_of.get(u, {}).values()]

    def recent_items(self, user_id: str, last: int) -> set[str]:
        """Items shown to ``user_id`` in their ``last`` newest impressions.

        This replica's unwritten impressions come first (they are the newest it
        made); the rest are read from the database, so another replica's
        impressions count once its writer has flushed them (``flush_s``).
        """
        with self._lock:
            mine = list(self._pending_of.get(user_id, {}).values())
        mine.sort(key=lambda p: p.created_at, reverse=True)
        shown = {item for p in mine[:last] for item in p.items}
        rest = last - min(len(mine), last)
        if rest > 0:
            try:
                with session_scope(self.sessions) as session:
                    shown |= recently_shown(session, user_id, rest)
            except SQLAlchemyError as exc:  # a filter, not the answer: serve without it
                self.metrics.database_errors.labels(operation="read").inc()
                log.warning("reading recent impressions of %r failed: %s", user_id, exc)
        return shown

    # -- writer side ----------------------------------------------------------------------

    def start(self) -> None:
        if not self.enabled or self._thread is not None:
            return
        self._stop.clear()
        self._wake.clear()
        self._thread = threading.Thread(target=self._run, name="impression-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Write everything queued, then stop the thread (graceful shutdown)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        self.flush()  # anything recorded after the thread's last look, or with no thread

    def flush(self, timeout_s: float = 30.0) -> int:
        """Write every queued impression now, in batches, and wait for the writer's batch
        in progress; returns how many this call wrote. Afterwards everything recorded
        before the call is in the database (or counted as dropped)."""
        with self._lock:
            waiting_for = set(self._pending)
        written = 0
        while batch := self._take():
            written += self._write(batch)
        with self._written:
            self._written.wait_for(lambda: not waiting_for & self._pending.keys(), timeout_s)
        return written

    def _run(self) -> None:
        while not self._stop.is_set():
            # Sleep a flush interval unless a full batch (or stop) wakes the thread sooner.
            self._wake.wait(self.flush_s)
            self._wake.clear()
            while not self._stop.is_set() and (batch := self._take()):
                self._write(batch)
                if len(batch) < self.batch_max:
                    break  # the queue is drained: back to sleep
        # stop() flushes the rest from the calling thread

    def _take(self) -> list[NewImpression]:
        """Up to ``batch_max`` queued impressions, oldest first (never waits)."""
        with self._lock:
            count = min(self.batch_max, len(self._queue))
            return [self._queue.popleft() for _ in range(count)]

    def _write(self, batch: list[NewImpression]) -> int:
        try:
            with session_scope(self.sessions) as session:
                insert_impressions(session, batch)
        except SQLAlchemyError as exc:
            self.metrics.impressions_dropped.labels(reason="write_failed").inc(len(batch))
            self.metrics.database_errors.labels(operation="impressions").inc()
            log.warning("writing %d impressions failed, dropped: %s", len(batch), exc)
            written = 0
        else:
            self.metrics.impressions_written.inc(len(batch))
            self.metrics.impression_batch_size.observe(len(batch))
            written = len(batch)
            self._after_write(batch)
        with self._written:
            for impression in batch:
                self._pending.pop(impression.id, None)
                of_user = self._pending_of.get(impression.user_id)
                if of_user is not None:
                    of_user.pop(impression.id, None)
                    if not of_user:
                        del self._pending_of[impression.user_id]
            self._written.notify_all()
        return written

    def _after_write(self, batch: list[NewImpression]) -> None:
        """Run ``after_write`` on a committed batch; whatever it raises is logged, never
        the writer thread's end (the impressions after it must still be written)."""
        if self.after_write is None:
            return
        try:
            self.after_write(batch)
        except Exception:
            log.exception("after writing %d impressions: the after-write step failed", len(batch))
