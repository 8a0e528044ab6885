"""Logging interactions: validate, then write all of a group's rows at once.

Concurrent requests share one write (``app.serving.group_commit``): one writer
thread commits the requests that arrived within a short window together, in one
``INSERT`` on Postgres and one transaction on SQLite.
The 201 is sent only after the commit of the request's group returned, so an
acknowledged interaction is durable; a failed group fails each of its requests
with the 503 a lone failed write gets.

A group whose events named lists this replica could not see (``unknown``: perhaps
still queued on another replica), or held positive events without an id that no list
answered (their list may be queued on another replica too), looks for those lists
once more after its commit (``app.serving.late_attribution``): on a thread of its
own, one look for the groups of 50 ms, so it never delays or fails their answers.

A write does not touch the state cache. Cached state carries a stamp of the log
rows it includes (``app.serving.state.log_stamp``) and every read checks it
against the log, so the user's next read refolds the state whether or not the
old entry is still there. Deleting it (as writes did until 2026-12-04) bought
nothing but a Redis round trip per group on the writer thread, a Redis
dependency of the write path, and, while the database is down, a worse degraded
answer (the artifact's row instead of the state from before the last write).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import replace
from datetime import UTC

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from app.core.config import Settings
from app.core.db import DatabaseGuard, DatabaseUnavailable
from app.core.errors import ApiError
from app.core.metrics import Metrics
from app.experiments.counting import Counted, experiment_events
from app.experiments.counting import count as count_experiment_events
from app.repository import NewInteraction, add_interactions
from app.schemas import InteractionIn
from app.serving.attribution import Attributor
from app.serving.group_commit import GroupCommit, GroupCommitClosed
from app.serving.holder import ModelHolder
from app.serving.impressions import Clock, utc_now
from app.serving.late_attribution import DeferredRecheck, LateAttribution
from app.serving.state import database_unavailable

log = logging.getLogger(__name__)

#: The rating range an artifact trained on implicit feedback carries.
IMPLICIT_RANGE = (0.0, 1.0)


class InteractionLogger:
    """Validates and durably records interactions."""

    def __init__(
        self,
        engine: Engine,
        holder: ModelHolder,
        settings: Settings,
        guard: DatabaseGuard | None = None,
        metrics: Metrics | None = None,
        attributor: Attributor | None = None,
        clock: Clock = utc_now,
        late: LateAttribution | None = None,
    ) -> None:
        self.attributor = attributor
        #: The second look for lists this replica could not see, off the write path.
        self.rechecks = DeferredRecheck(late) if late is not None else None
        self.clock = clock
        self.engine = engine
        self.holder = holder
        self.settings = settings
        self.guard = guard or DatabaseGuard(settings.db_retry_s)
        self.metrics = metrics
        self._group: GroupCommit[list[NewInteraction], int] = GroupCommit(
            self._write_group,
            settings.interaction_commit_wait_ms / 1000.0,
            max_group=settings.batch_max,
            name="interaction-writer",
            on_group=metrics.interaction_group_size.observe if metrics is not None else None,
        )

    def record(self, interactions: Sequence[InteractionIn]) -> int:
        """Validate all, write all in one atomic write (all or nothing); the count.

        Any failure before the commit returned answers 503 and nothing is
        acknowledged. (A connection lost *during* the commit, the ``INSERT`` itself
        on Postgres, may still have committed; the client retries, and a duplicate
        click is harmless.)
        Blocks the calling thread; the route uses ``record_async``.
        """
        future = self._submit(interactions)
        try:
            return future.result()
        except Exception as exc:
            raise self._answer_for(exc) from exc

    async def record_async(self, interactions: Sequence[InteractionIn]) -> int:
        """``record`` without a thread-pool thread per waiting request."""
        future = self._submit(interactions)
        try:
            return await asyncio.wrap_future(future)
        except Exception as exc:
            raise self._answer_for(exc) from exc

    def close(self) -> None:
        """Commit what is queued and stop the writer (graceful shutdown), then run the
        second looks its groups queued."""
        self._group.close()
        if self.rechecks is not None:
            self.rechecks.close()

    def _submit(self, interactions: Sequence[InteractionIn]) -> Future[int]:
        rows = self.validate(interactions)
        now = self.clock()
        rows = [
            row if row.ts is not None else replace(row, ts=now, stamped_on_receipt=True)
            for row in rows
        ]
        try:
            return self._group.submit(rows)
        except GroupCommitClosed as exc:
            raise ApiError(503, "shutting_down", f"{exc}; retry on another replica") from exc

    def _answer_for(self, exc: Exception) -> Exception:
        """The error a request of a failed group answers (the writer logged it once)."""
        if isinstance(exc, DatabaseUnavailable | SQLAlchemyError):
            return database_unavailable(exc)
        return exc

    def _write_group(self, groups: Sequence[list[NewInteraction]]) -> list[int]:
        """The writer thread's work: every request's rows, all or nothing.

        Raises on any failure before the rows were committed; ``GroupCommit`` then
        fails every request of the group. On Postgres ``engine`` is in autocommit
        (``app.core.db.make_write_engine``): the attribution reads are statements of
        their own and the rows one ``INSERT``, atomic by itself, so ``begin()`` sends
        nothing and the group costs two round trips fewer; on SQLite it is a real
        transaction. A plain ``Connection``, not a ``Session``: the writer runs under
        the GIL beside the event loop, and a one-request group cost 0.68-0.70 instead
        of 0.79-0.81 ms of CPU on Postgres + Redis (docs/performance.md, "Round trips
        of the production path").
        """
        rows = [row for group in groups for row in group]
        counted: Counted = []
        refused: Counter[str] = Counter()
        unknown: set[str] = set()
        unmatched: list[NewInteraction] = []
        try:
            with self.guard.attempt(), self.engine.begin() as connection:
                if self.attributor is not None:
                    attributed = self.attributor.attribute(connection, rows)
                    rows, refused = attributed.rows, attributed.refused
                    unknown, unmatched = attributed.unknown, attributed.unmatched
                    counted = experiment_events(
                        connection,
                        attributed.queued,
                        rows,
                        self.settings.experiment_click_types,
                        self.settings.experiment_conversion_types,
                    )
                add_interactions(connection, rows)
        except SQLAlchemyError as exc:
            if self.metrics is not None:
                self.metrics.database_errors.labels(operation="write").inc(len(groups))
            log.error(
                "interaction write of %d requests failed, nothing recorded: %s", len(groups), exc
            )
            raise
        if self.metrics is not None:
            count_experiment_events(self.metrics, counted)
            for reason, events in refused.items():
                self.metrics.attribution_refused.labels(reason=reason).inc(events)
        if (unknown or unmatched) and self.rechecks is not None:
            # Committed: look again for those lists, in case another replica wrote one
            # after our read and looked for waiting events before this insert was
            # committed (``app.serving.late_attribution``); queued, so the requests are
            # answered now and a failure there never answers them 503.
            self.rechecks.submit(unknown, unmatched)
        return [len(group) for group in groups]

    def validate(self, interactions: Sequence[InteractionIn]) -> list[NewInteraction]:
        """Checks that depend on settings and on the served artifact; 4xx naming the entry."""
        if len(interactions) > self.settings.max_batch:
            raise ApiError(
                413,
                "batch_too_large",
                f"{len(interactions)} interactions in one request; "
                f"the limit is max_batch={self.settings.max_batch}",
            )
        low, high = self._rating_range()
        rows = []
        for n, item in enumerate(interactions):
            where = f"interactions[{n}]" if len(interactions) > 1 else "interaction"
            for name in ("user_id", "item_id"):
                value = getattr(item, name)
                if len(value) > self.settings.max_id_length:
                    raise ApiError(
                        422,
                        "invalid_id",
                        f"{where}.{name} is {len(value)} characters long; "
                        f"the limit is {self.settings.max_id_length}",
                    )
            if item.rating is not None and not (
                math.isfinite(item.rating) and low <= item.rating <= high
            ):
                raise ApiError(
                    422,
                    "rating_out_of_range",
                    f"{where}.rating {item.rating} is outside the rating range [{low:g}, {high:g}]",
                )
            if item.type is not None and item.type not in self.settings.event_types:
                raise ApiError(
                    422,
                    "unknown_event_type",
                    f"{where}.type {item.type!r} is not an event type of this server; known: "
                    f"{', '.join(sorted(self.settings.event_types))} (GENREC_EVENT_TYPES)",
                )
            ts = item.timestamp
            if ts is not None and ts.tzinfo is None:
                ts = ts.replace(tzinfo=UTC)  # ISO-8601 without an offset is taken as UTC
            rows.append(
                NewInteraction(
                    item.user_id,
                    item.item_id,
                    item.rating,
                    ts,
                    type=item.type,
                    recommendation_id=item.recommendation_id,
                )
            )
        return rows

    def _rating_range(self) -> tuple[float, float]:
        """The default model's rating range when it is loaded; any finite rating otherwise.

        A model trained on implicit data carries the range [0, 1] (click or not);
        that says nothing about which ratings clients may log (the log also feeds
        explicit models), so it does not restrict them.
        """
        model = self.holder.peek(self.holder.default_model)
        if model is None or model.rating_range == IMPLICIT_RANGE:
            return (-math.inf, math.inf)
        return model.rating_range
