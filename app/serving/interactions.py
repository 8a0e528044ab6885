"""Logging interactions: validate, write in one transaction, then invalidate cached state.

The 201 is sent only after the commit returned, so an acknowledged interaction
is durable. Invalidation runs after the commit and may fail silently (Redis
down); correctness does not depend on it because cached state carries the
newest log id it includes (see ``app.serving.state``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app.core.cache import StateCache
from app.core.config import Settings
from app.core.db import DatabaseGuard, DatabaseUnavailable, session_scope
from app.core.errors import ApiError
from app.core.metrics import Metrics
from app.experiments.counting import Counted, experiment_events
from app.experiments.counting import count as count_experiment_events
from app.repository import NewInteraction, add_interactions
from app.schemas import InteractionIn
from app.serving.attribution import Attributor
from app.serving.holder import ModelHolder
from app.serving.impressions import Clock, utc_now
from app.serving.state import database_unavailable

log = logging.getLogger(__name__)

#: The rating range an artifact trained on implicit feedback carries.
IMPLICIT_RANGE = (0.0, 1.0)


class InteractionLogger:
    """Validates and durably records interactions."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        cache: StateCache,
        holder: ModelHolder,
        settings: Settings,
        guard: DatabaseGuard | None = None,
        metrics: Metrics | None = None,
        attributor: Attributor | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.attributor = attributor
        self.clock = clock
        self.sessions = sessions
        self.cache = cache
        self.holder = holder
        self.settings = settings
        self.guard = guard or DatabaseGuard(settings.db_retry_s)
        self.metrics = metrics

    def record(self, interactions: Sequence[InteractionIn]) -> int:
        """Validate all, write all in one transaction (all or nothing), invalidate; the count.

        Any failure before the commit returned answers 503 and nothing is
        acknowledged. (A connection lost *during* COMMIT may still have
        committed; the client retries, and a duplicate click is harmless.)
        """
        rows = self.validate(interactions)
        now = self.clock()
        rows = [row if row.ts is not None else replace(row, ts=now) for row in rows]
        counted: Counted = []
        try:
            with self.guard.attempt(), session_scope(self.sessions) as session:
                if self.attributor is not None:
                    rows = self.attributor.attribute(session, rows)
                    counted = experiment_events(
                        session,
                        self.attributor.recorder,
                        rows,
                        self.settings.experiment_click_types,
                        self.settings.experiment_conversion_types,
                    )
                accepted = add_interactions(session, rows)
        except DatabaseUnavailable as exc:
            raise database_unavailable(exc) from exc
        except SQLAlchemyError as exc:
            if self.metrics is not None:
                self.metrics.database_errors.labels(operation="write").inc()
            log.error("interaction write failed, nothing recorded: %s", exc)
            raise database_unavailable(exc) from exc
        self.cache.invalidate(dict.fromkeys(row.user_id for row in rows))
        if self.metrics is not None and counted:
            count_experiment_events(self.metrics, counted)
        return accepted

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
