"""Attribution: which impression an interaction answers, decided when it is logged.

* An event that names a ``recommendation_id`` is attributed to that impression
  when it exists (written, or still queued on this replica). An id that names
  no impression (a typo, an impression dropped from a full queue, one deleted
  by retention, or one still queued on another replica) never fails or loses
  the event: it is logged as sent, with no attribution, and a warning is
  written to the server log.
* An event without one is attributed, when its type is positive (weight > 0,
  or untyped), to the latest impression that showed that item to that user
  within ``window`` before the event's time. Negative and zero-weight events
  are attributed only explicitly.

One query per batch of events for each rule (``existing_impressions``;
``impressions_in_window``, a range scan of ``(user_id, created_at)`` whose
lists are searched for the item here), inside the batch's transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from app.repository import NewInteraction, as_utc, existing_impressions, impressions_in_window
from app.serving.impressions import ImpressionRecorder

log = logging.getLogger(__name__)


def is_positive(event_type: str | None, weights: Mapping[str, float]) -> bool:
    """Untyped events (a rating, or a click) count as positive, as they always have."""
    return event_type is None or weights.get(event_type, 0.0) > 0


class Attributor:
    """Fills ``NewInteraction.impression_id`` for a batch of validated events."""

    def __init__(
        self,
        recorder: ImpressionRecorder,
        window_minutes: float,
        weights: Mapping[str, float],
    ) -> None:
        self.recorder = recorder
        self.window = timedelta(minutes=window_minutes)
        self.weights = weights

    def attribute(self, session: Session, rows: Sequence[NewInteraction]) -> list[NewInteraction]:
        """``rows`` with ``impression_id`` set where an impression answers them.

        Every row has its time (``ts``) filled by the caller.
        """
        explicit = [r.recommendation_id for r in rows if r.recommendation_id is not None]
        known = set(existing_impressions(session, explicit)) if explicit else set()
        known |= {i for i in explicit if self.recorder.pending(i) is not None}
        implicit = [
            r
            for r in rows
            if r.recommendation_id is None and is_positive(r.type, self.weights) and r.ts
        ]
        latest = self._window_matches(session, implicit) if implicit and self.window else {}
        out = []
        for row in rows:
            if row.recommendation_id is not None:
                if row.recommendation_id in known:
                    out.append(replace(row, impression_id=row.recommendation_id))
                else:
                    log.warning(
                        "interaction of user %r on item %r names recommendation_id %r, which is "
                        "no known impression: logged unattributed",
                        row.user_id,
                        row.item_id,
                        row.recommendation_id,
                    )
                    out.append(row)
            else:
                out.append(replace(row, impression_id=latest.get(id(row))))
        return out

    def _window_matches(
        self, session: Session, rows: Sequence[NewInteraction]
    ) -> dict[int, str | None]:
        """Per row (by ``id(row)``) the latest impression in ``[ts - window, ts]`` that
        showed its item to its user; the database's and this replica's queued ones."""
        times = [as_utc(r.ts) for r in rows if r.ts is not None]
        earliest, newest = min(times) - self.window, max(times)
        users = {r.user_id for r in rows}
        wanted = {(r.user_id, r.item_id) for r in rows}
        lists = [
            (hit.user_id, hit.items, hit.created_at, hit.impression_id)
            for hit in impressions_in_window(session, list(users), earliest, newest)
        ]
        lists += [
            (p.user_id or "", p.items, as_utc(p.created_at), p.id)
            for p in self.recorder.pending_for_users(users)
        ]
        shown: dict[tuple[str, str], list[tuple[datetime, str]]] = {}
        for user_id, items, created_at, rec_id in lists:
            for item_id in items:
                if (user_id, item_id) in wanted:
                    shown.setdefault((user_id, item_id), []).append((created_at, rec_id))
        out: dict[int, str | None] = {}
        for row in rows:
            assert row.ts is not None
            ts = as_utc(row.ts)
            candidates = [
                (at, rec_id)
                for at, rec_id in shown.get((row.user_id, row.item_id), [])
                if ts - self.window <= at <= ts
            ]
            out[id(row)] = max(candidates)[1] if candidates else None
        return out
