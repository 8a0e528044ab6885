"""Retention of impressions: a background thread deletes those older than the setting.

Every replica runs one; the delete is idempotent, so several replicas deleting
the same range do no harm (``GENREC_IMPRESSION_RETENTION_DAYS``, none = keep). An
experiment's impressions are kept while its results need them (``delete_impressions_before``).
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app.core.db import session_scope
from app.repository import delete_impressions_before
from app.serving.impressions import Clock, utc_now

log = logging.getLogger(__name__)


class ImpressionRetention:
    """Deletes impressions older than ``days`` every ``interval_s`` (first run at start)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        days: float | None,
        interval_s: float,
        clock: Clock = utc_now,
    ) -> None:
        self.sessions = sessions
        self.days = days
        self.interval_s = interval_s
        self.clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def clean(self) -> int:
        """Delete what is past retention now; the number of impressions deleted."""
        if self.days is None:
            return 0
        with session_scope(self.sessions) as session:
            return delete_impressions_before(session, self.clock() - timedelta(days=self.days))

    def start(self) -> None:
        if self.days is None or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="impression-retention", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10.0)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                deleted = self.clean()
                if deleted:
                    log.info("deleted %d impressions older than %g days", deleted, self.days)
            except SQLAlchemyError as exc:
                log.warning("impression retention cleanup failed (retried later): %s", exc)
            self._stop.wait(self.interval_s)
