"""``ErasureSync``: every server's poll of ``erased_users``, the way the catalog is polled.

An erasure deletes rows, and a deleted row leaves nothing for another server to
notice; the erasure's record does. Each server reads the records whose
``(epoch, user_id)`` is after the newest it read (epochs are handed out in
commit order, ``app.repository.erase_users``, so no erasure is passed over),
at its reload interval, and for each new one:

* records it in ``ErasedUsers``, which serving resolves users through
  (``app.serving.erased``);
* drops the user's cached states: this process's memory tier, the states still
  on their way to Redis, and Redis itself (every server does, so a state a
  lagging server wrote there after the erasure goes too; serving would not use
  it anyway: an erased user's state is cached under a key of the erasure's own),
  and those under the key of the user's previous erasure, if any;
* writes this server's queued impressions, then deletes the user's impressions
  created up to the erasure (plus the clocks' margin): impressions are written
  in batches after the response (``app.serving.impressions``), so lists a server
  showed the user before the erasure may reach the table after its transaction.

The server that answers ``DELETE /v1/users/{id}`` polls before answering
(``apply_now``), and says so when that poll failed: the erasure is committed, but this
server applies it only at a later poll, like the other replicas. The first
read takes the whole table; the read at start-up, before the server serves anyone,
only records. A failed read keeps what is known and retries at the next interval.
What an erasure leaves to clean up (its states to drop, its impressions to delete) is
noted as it is recorded and kept until done, since a recorded erasure is not new to a
later read. After a failed start-up read, the server serves meanwhile (not knowing of
any erasure), so the reads that follow clean up as any poll does: every erased user's
cached states are dropped, and the impressions of those erased since this server
began (older ones it cannot have queued) are deleted.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app.core.cache import StateCache
from app.core.db import session_scope
from app.core.poller import Poller
from app.repository import delete_impressions_until, erasures_since
from app.serving.erased import CLOCK_MARGIN, ErasedUsers, Erasure, cache_key
from app.serving.impressions import ImpressionRecorder

log = logging.getLogger(__name__)


class ErasureSync:
    """Keeps ``erased`` in step with the ``erased_users`` table (module docstring)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        erased: ErasedUsers,
        cache: StateCache,
        interval_s: float,
        page_size: int = 1000,
        impressions: ImpressionRecorder | None = None,
    ) -> None:
        self.sessions = sessions
        self.erased = erased
        self.cache = cache
        self.impressions = impressions
        self.interval_s = interval_s
        self.page_size = page_size
        self._watermark: tuple[int, str | None] = (-1, None)  # (epoch, user id) read last
        #: Users whose impressions up to this moment are still to delete (``_delete_impressions``).
        self._unclean: dict[str, datetime] = {}
        #: Cache keys of erased users whose cached states are still to drop (``_forget``).
        self._unforgotten: set[str] = set()
        self._forget_failing = False  # the last forget failed (logged once until it succeeds)
        #: Before it, this server queued no impression: older erasures need no delete here.
        self._began = datetime.now(UTC)
        self._lock = threading.Lock()  # one refresh at a time
        self._poller = Poller("erasure-sync", self.refresh, interval_s)

    def start(self) -> None:
        """The start-up read (it only records: this fresh process holds nothing of anyone
        yet, and the servers that were running cleaned up after their own polls), then
        the poll thread."""
        self._refresh(record_only=True)
        self._poller.start()

    def stop(self) -> None:
        self._poller.stop()

    def refresh(self) -> int:
        """Read the erasures after the watermark; returns how many were new here.

        Raises nothing: a failure is logged and the next poll retries (the cached states
        still to drop and the impressions still to delete are kept until that succeeds:
        an erasure is recorded once, so a later read would not find it new again)."""
        return self._refresh(record_only=False)[0]

    def apply_now(self) -> bool:
        """``refresh`` for ``DELETE /v1/users/{id}``, after its commit: whether this server
        now applies every erasure committed so far (serves the users as erased, their cached
        states dropped, their late impressions deleted). False when the read, a delete or
        the cache's drop of the states failed (logged): the answer must not say the erasure
        is applied here when it is not, and the next poll applies it (the rows are read
        again, the drops and deletes retried)."""
        return self._refresh(record_only=False)[1]

    def _refresh(self, record_only: bool) -> tuple[int, bool]:
        """``refresh``, and whether it completed; with ``record_only`` (start-up, ``start``)
        nothing is cleaned up."""
        new = 0
        with self._lock:
            try:
                while True:
                    epoch, after_id = self._watermark
                    with session_scope(self.sessions) as session:
                        rows = erasures_since(session, epoch, after_id, self.page_size)
                    if rows:
                        before = {r.user_id: self.erased.get(r.user_id) for r in rows}
                        changed = self.erased.update(
                            (r.user_id, Erasure(r.erased_at, r.epoch)) for r in rows
                        )
                        if record_only:
                            changed = []
                        # What is left to clean up is noted before any of it is tried: these
                        # users are recorded now, so no later read finds them new again.
                        self._unforgotten.update(changed)
                        # A user erased again: the states cached since the previous erasure too.
                        self._unforgotten.update(
                            cache_key(u, e) for u in changed if (e := before[u]) is not None
                        )
                        for user_id in changed:
                            erasure = self.erased.get(user_id)
                            until = None if erasure is None else erasure.erased_at + CLOCK_MARGIN
                            if until is not None and until >= self._began:
                                self._unclean[user_id] = until
                        new += len(changed)
                        self._watermark = (rows[-1].epoch, rows[-1].user_id)
                    if len(rows) < self.page_size:
                        break
                forgotten = self._forget()  # with those a failed poll left
                self._delete_impressions()
            except SQLAlchemyError as exc:
                log.warning("cannot read erased users (keeping what is known): %s", exc)
                return new, False
            except Exception:  # the poll thread must survive
                log.exception("reading erased users failed; will retry at the next interval")
                return new, False
        return new, forgotten

    def _forget(self) -> bool:
        """Drop the cached states still to drop; whether they are all dropped. Kept until
        the cache says every tier dropped them (Redis failing or its breaker open: retried
        at the next poll, rather than left there until their TTL)."""
        if not self._unforgotten:
            return True
        keys = sorted(self._unforgotten)
        if not self.cache.forget(keys):
            if not self._forget_failing:  # one line per outage: the poll retries each interval
                log.warning(
                    "cannot drop the cached states of %d erased user key(s) (the cache "
                    "failed); will retry at the next interval",
                    len(keys),
                )
            self._forget_failing = True
            return False
        if self._forget_failing:
            log.info("dropped the cached states of %d erased user key(s) left over", len(keys))
        self._forget_failing = False
        self._unforgotten.difference_update(keys)
        return True

    def _delete_impressions(self) -> None:
        """This server's queued impressions written, then those of the users erased since
        the last successful delete, up to each erasure, deleted (module docstring)."""
        if self.impressions is None or not self._unclean:
            self._unclean.clear()
            return
        self.impressions.flush()
        with session_scope(self.sessions) as session:
            delete_impressions_until(session, list(self._unclean.items()))
        self._unclean.clear()
