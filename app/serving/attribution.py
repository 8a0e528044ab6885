"""Attribution: which impression an interaction answers, decided when it is logged.

* An event that names a ``recommendation_id`` is attributed to that impression
  when the impression exists (written, or still queued on this replica), is a
  list of the event's user or of no user (a session's ad-hoc list, whose
  later logged-in user claims it by its id; an anonymous ad-hoc list; similar
  items), and showed the event's item. Anything else never fails or loses the
  event: it is logged as sent, with no attribution, a one-line warning in the
  server log says why (a debug line for ``unknown``, below), and
  ``genrec_attribution_refused{reason}`` counts it
  once the event is written: ``unknown`` (an id that names no impression: a
  typo, an impression dropped from a full queue, one deleted by retention, or
  one still queued on another replica; the last kind is attributed later, when
  that list is written, by ``app.serving.late_attribution``, with the checks of
  ``refusal``, and also counted in ``genrec_attribution_late``; behind a balancer
  that is most clicks sent to another replica within the impression flush, so
  this refusal is a debug line, not a warning that is false a moment later: two
  replicas under load logged 2,784 such warnings of 2,800, review on 12-07),
  ``other_user`` (another user's list:
  an id is no credential, and whoever holds one could otherwise credit that
  list with clicks in its experiment), ``item_not_shown`` (an item the list
  did not show: the event does not answer that list, as a window match never
  does either).
* An event without one is attributed, when its type is positive (weight > 0,
  or untyped), to the latest impression that showed that item to that user
  within ``window`` before the event's time. Negative and zero-weight events
  are attributed only explicitly. Clocks differ between replicas, so when no
  such impression exists and the server stamped the event on receipt (the
  client sent no ``timestamp``), a list already *written* to the database and
  stamped at most ``CLOCK_TOLERANCE`` (a minute) *after* the event answers it,
  the earliest of those: the same tolerance the experiment results give an
  event that names its list. A written list was served before the event was
  attributed, which is milliseconds after it arrived (the write group's wait),
  so its later stamp is another replica's clock, not a list shown after the
  event. No other later list answers an event: not this replica's own queued
  list (stamped on the same clock as the event, so it was served after the
  event arrived), and none after a client's ``timestamp``, which says when the
  event happened, possibly long before it is sent (an offline batch, an
  import), when lists served after it exist; its times cannot tell a skewed
  client clock from an item found elsewhere and then shown, and crediting the
  later list gave its experiment arm a click it never earned (the arm serving
  recently interacted items most). Such an event is attributed by its
  ``recommendation_id``, which proves the list came first. A list stamped
  before the event is always preferred.

One query per batch of events for each rule (``existing_impressions``, which
reads each named impression's user, session and items;
``impressions_in_window``, a range scan of ``(user_id, created_at)`` whose
lists are searched for the item here), on the interaction writer's connection
before the batch's rows are inserted (each a statement of its own on Postgres,
``app.core.db.make_write_engine``; in the batch's transaction on SQLite).

This replica's queued impressions are looked at *before* the database: an
impression leaves the queue only after its batch is committed, so one written
in between is then in the queue's snapshot or in the database's, never in
neither. (Looked at the other way round, an impression written between the
two reads was in neither, and its event was logged unattributed and uncounted
in its experiment; the dashboard's experiment test caught it once in CI.) The
queued impressions used travel with the result (``Attributed.queued``), so the
experiment counting that follows on the same connection does not look again.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from app.core.clock_skew import CLOCK_TOLERANCE
from app.repository import (
    NamedList,
    NewImpression,
    NewInteraction,
    as_utc,
    existing_impressions,
    impressions_in_window,
)
from app.serving.impressions import ImpressionRecorder

log = logging.getLogger(__name__)


def is_positive(event_type: str | None, weights: Mapping[str, float]) -> bool:
    """Untyped events (a rating, or a click) count as positive, as they always have."""
    return event_type is None or weights.get(event_type, 0.0) > 0


#: Why an event's ``recommendation_id`` was not attributed (``genrec_attribution_refused``).
UNKNOWN = "unknown"
OTHER_USER = "other_user"
ITEM_NOT_SHOWN = "item_not_shown"


def refusal(row: NewInteraction, named: NamedList | None) -> str | None:
    """Why the impression ``row`` names (``named``, None when there is none) does not
    answer it, or None when it does: a list of no user answers anyone (a session's
    later logged-in user claims it), a user's list that user only, and either only
    for an item it showed."""
    if named is None:
        return UNKNOWN
    if named.user_id is not None and named.user_id != row.user_id:
        return OTHER_USER
    if row.item_id not in named.items:
        return ITEM_NOT_SHOWN
    return None


def _why(reason: str, named: NamedList | None) -> str:
    """The refusal in the server log's words."""
    if reason == OTHER_USER and named is not None:
        return f"a list of user {named.user_id!r}"
    if reason == ITEM_NOT_SHOWN:
        return "a list that did not show that item"
    return "which is no known impression"


@dataclass(frozen=True)
class Attributed:
    """A batch's events with ``impression_id`` filled where one answers them, this
    replica's queued impressions the attribution looked at (by id), and how many named
    ``recommendation_id`` s were refused, by reason (counted once the rows are written)."""

    rows: list[NewInteraction]
    queued: dict[str, NewImpression]
    refused: Counter[str] = field(default_factory=Counter)
    #: The ids refused as ``unknown``: the interaction writer looks for them again
    #: once the rows are committed (``app.serving.late_attribution``).
    unknown: set[str] = field(default_factory=set)
    #: The positive events without an id that no list answered: the interaction writer
    #: looks again for a list of theirs once they are committed (a list another
    #: replica wrote meanwhile, ``app.serving.late_attribution``).
    unmatched: list[NewInteraction] = field(default_factory=list)


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

    def attribute(self, db: Session | Connection, rows: Sequence[NewInteraction]) -> Attributed:
        """``rows`` with ``impression_id`` set where an impression answers them.

        Every row has its time (``ts``) filled by the caller.
        """
        explicit = [r.recommendation_id for r in rows if r.recommendation_id is not None]
        implicit = [
            r
            for r in rows
            if r.recommendation_id is None and is_positive(r.type, self.weights) and r.ts
        ]
        window = bool(implicit and self.window)
        # The queue first, then the database (module docstring).
        queued = {i: p for i in explicit if (p := self.recorder.pending(i)) is not None}
        if window:
            for p in self.recorder.pending_for_users({r.user_id for r in implicit}):
                queued[p.id] = p
        unqueued = [i for i in explicit if i not in queued]
        named = {
            i: NamedList(p.user_id, p.session_id, p.items)
            for i in explicit
            if (p := queued.get(i)) is not None
        }
        named |= existing_impressions(db, unqueued) if unqueued else {}
        latest = self._window_matches(db, implicit, queued) if window else {}
        out = []
        refused: Counter[str] = Counter()
        unknown: set[str] = set()
        for row in rows:
            if row.recommendation_id is None:
                out.append(replace(row, impression_id=latest.get(id(row))))
                continue
            shown = named.get(row.recommendation_id)
            reason = refusal(row, shown)
            if reason is None:
                out.append(replace(row, impression_id=row.recommendation_id))
                continue
            refused[reason] += 1
            if reason == UNKNOWN:
                unknown.add(row.recommendation_id)
            # An unknown id is most often a list still queued on another replica, which
            # late attribution credits a moment later: a warning per such click was a
            # false line each (module docstring). The final refusals warn.
            log.log(
                logging.DEBUG if reason == UNKNOWN else logging.WARNING,
                "interaction of user %r on item %r names recommendation_id %r, %s: "
                "logged unattributed%s",
                row.user_id,
                row.item_id,
                row.recommendation_id,
                _why(reason, shown),
                " (attributed when that list is written)" if reason == UNKNOWN else "",
            )
            out.append(row)
        unmatched = [row for row in implicit if window and latest.get(id(row)) is None]
        return Attributed(out, queued, refused, unknown, unmatched)

    def _window_matches(
        self,
        db: Session | Connection,
        rows: Sequence[NewInteraction],
        queued: Mapping[str, NewImpression],
    ) -> dict[int, str | None]:
        """``window_matches`` at log time: the later list a clock's skew allows too."""
        return window_matches(db, rows, queued, self.window, later_lists=True)


def window_matches(
    db: Session | Connection,
    rows: Sequence[NewInteraction],
    queued: Mapping[str, NewImpression],
    window: timedelta,
    later_lists: bool,
) -> dict[int, str | None]:
    """Per row (by ``id(row)``) the latest impression in ``[ts - window, ts]`` that
    showed its item to its user, else, with ``later_lists`` and for a row stamped on
    receipt, the earliest written one in ``(ts, ts + CLOCK_TOLERANCE]`` (module
    docstring); the database's and ``queued`` ones (this replica's, at log time).

    Late attribution (``app.serving.late_attribution``) passes no ``later_lists``: the
    reason a written later list may answer an event at log time (it was served before
    the event was attributed, milliseconds after it arrived) does not hold for a list
    written after the event was logged, which may have been served after the event.
    """
    times = [as_utc(r.ts) for r in rows if r.ts is not None]
    earliest, newest = min(times) - window, max(times) + CLOCK_TOLERANCE
    users = {r.user_id for r in rows}
    wanted = {(r.user_id, r.item_id) for r in rows}
    lists = [
        (hit.user_id, hit.items, hit.created_at, hit.impression_id)
        for hit in impressions_in_window(db, list(users), earliest, newest)
    ]
    lists += [
        (p.user_id or "", p.items, as_utc(p.created_at), p.id)
        for p in queued.values()
        if p.user_id in users
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
        showed = shown.get((row.user_id, row.item_id), [])
        before = [(at, rec_id) for at, rec_id in showed if ts - window <= at <= ts]
        # A queued list may also be in the database's read (committed in between):
        # either way it is this replica's, stamped on the event's clock.
        skewed = [
            (at, rec_id)
            for at, rec_id in showed
            if later_lists
            and row.stamped_on_receipt
            and rec_id not in queued
            and ts < at <= ts + CLOCK_TOLERANCE
        ]
        if before:
            out[id(row)] = max(before)[1]
        elif skewed:
            out[id(row)] = min(skewed)[1]
        else:
            out[id(row)] = None
    return out
