"""Late attribution: an event that named a list before the list was written is
attributed when it is.

Behind a load balancer, a click may reach replica B while the list it names
(``recommendation_id``) is still queued on replica A, the replica that served it
(``GENREC_IMPRESSION_FLUSH_S`` plus a write). B cannot see the list, so it logs the
event unattributed (``genrec_attribution_refused{reason="unknown"}``). Before this
module such an event never counted, so an experiment's CTR depended on how fast
clients send events and how the balancer spreads them (by hand on 12-07: 24 of 80
clicks sent to the other replica at once were credited, 80 of 80 sent 1 s later).

Now each side looks for the other:

* **The list's replica** (``written``): after its writer commits a batch of
  impressions, it looks for logged, unattributed events that name them.
* **The event's replica** (``recheck``): after its insert of a group whose events
  named ids it found no list for is committed, it reads those lists again and does
  the same for the ones now written: queued to a thread of its own
  (``DeferredRecheck``), so the group's requests are answered without waiting.

The same race hits an event **without** an id, which the window attributes (the latest
list that showed its item to its user within ``window`` before it,
``app.serving.attribution``): when that list is still queued on A, B logs the event
unattributed. So both looks do the same for such events:

* The list's replica reads, in one range scan of ``ix_interactions_user_id_ts``
  (``repository.waiting_window_events``), the unattributed events without an id of its
  batch's users stamped at most ``window`` after one of their lists; the positive ones
  on an item that list showed, stamped not before it, are attributed to the list the
  log-time rule picks among the lists written now (``attribution.window_matches``:
  the latest before the event, which may be another written list than this batch's).
* The event's replica, after its insert of a group with positive events without an
  id that no list answered, runs that rule for them once more (one impressions read);
  only when it finds a list does it read the events back for their row ids.

Only unattributed events are looked at: one attributed at log time to an older list
stays there when a later list (still before it) is written late. Attribution is
decided once. The log-time rule's minute of tolerance for a written list stamped
*after* an event stamped on receipt does not apply late: it rests on the list having
been written, hence served, before the event was attributed, milliseconds after it
arrived; a list written after the event was logged may have been served after the
click, and crediting it is the bias the window rule keeps out (an arm showing recently
clicked items). Negative and zero-weight events are attributed only explicitly, late
as at log time.

Each named event found is checked exactly as at log time (``attribution.refusal``: a list of
the event's user or of no user, that showed the event's item); one that passes gets
``impression_id`` set to its ``recommendation_id`` and is counted in its list's
experiment (``genrec_experiment_clicks`` / ``conversions``), once. The experiment's
results need nothing more: they are a query over impressions and the events'
``impression_id`` (``app.experiments.results``). A refused one stays unattributed and is
not counted again. The server log says nothing per event (a debug line per pass).

**Why neither side can miss the other.** Each look is a transaction of its own that
begins after the write it follows has committed, and on Postgres (read committed)
each statement sees every transaction committed before it began. Say the list's
replica's look does not see the event: then the event's insert committed after that
look began, which is after the list's commit. The event's replica's second look begins
after its insert committed, so after the list's commit: it sees the list. (Without the
second look, B reading "no list", A committing and looking, and only then B's insert
committing, lost the event; ``tests/app/test_late_attribution_replicas.py`` makes that order.)
The same argument holds for window events (each look reads the other side's rows
in a statement begun after its own commit). Both may see each other: the event then
goes to whichever ``UPDATE ... WHERE impression_id IS NULL`` comes first; the other
waits on the row's lock, then finds it attributed, and leaves it out of its count
(``RETURNING``, or the row count of a window event's ``UPDATE``). Two looks cannot
deadlock: each locks the events naming a list first, in id order
(``repository.waiting_interactions``), then the window events, in id order
(``repository.attribute_window``), and no row is of both kinds. An event
attributed at log time is never looked at (``impression_id`` is set). On SQLite (one
process) the queue-then-database read at log time already sees every list, and both
looks find nothing.

A look that fails (the database is down) is logged and counted
(``genrec_database_errors{operation="late_attribution"}``); the impressions and the
events stay written, and those events stay unattributed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy import Engine
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from app.core.metrics import Metrics
from app.core.writer_thread import WriterThread
from app.experiments.counting import Counted, experiment_events
from app.experiments.counting import count as count_experiment_events
from app.repository import (
    NamedList,
    NewImpression,
    NewInteraction,
    as_utc,
    attribute_waiting,
    attribute_window,
    existing_impressions,
    waiting_interactions,
    waiting_window_events,
)
from app.serving.attribution import is_positive, refusal, window_matches

log = logging.getLogger(__name__)

#: ``genrec_attribution_late{by}``: which side attributed the event.
LIST_WRITER = "list_writer"
EVENT_WRITER = "event_writer"
#: ``genrec_attribution_late{rule}``: an event that named its list (a late
#: ``refused{reason="unknown"}``, so ``unknown`` minus these never found its list), or
#: one the window matched (never refused: it named none).
NAMED = "named"
WINDOW = "window"


def attribute_late(connection: Connection, lists: Mapping[str, NamedList]) -> list[NewInteraction]:
    """Attribute the unattributed events that name one of ``lists`` (by id) and that
    the list answers (``refusal``); those this call attributed, ``impression_id`` set."""
    waiting = waiting_interactions(connection, list(lists))
    answered = {
        row_id: row
        for row_id, row in waiting
        if row.recommendation_id is not None
        and refusal(row, lists.get(row.recommendation_id)) is None
    }
    done = attribute_waiting(connection, sorted(answered))
    return [
        replace(row, impression_id=row.recommendation_id)
        for row_id, row in answered.items()
        if row_id in done
    ]


def attribute_window_late(
    connection: Connection, waiting: Sequence[tuple[int, NewInteraction]], window: timedelta
) -> list[NewInteraction]:
    """Attribute each of ``waiting`` (logged, unattributed, positive events without an
    id, by row id) to the list the log-time rule chooses among the lists written now
    (``attribution.window_matches``, without later lists); those this call attributed,
    ``impression_id`` set. An event no list answers stays as it is."""
    if not waiting:
        return []
    choice = window_matches(connection, [row for _, row in waiting], {}, window, later_lists=False)
    chosen = {
        row_id: replace(row, impression_id=rec_id)
        for row_id, row in waiting
        if (rec_id := choice[id(row)]) is not None
    }
    done = attribute_window(
        connection, [(row_id, row.impression_id or "") for row_id, row in chosen.items()]
    )
    return [row for row_id, row in chosen.items() if row_id in done]


class LateAttribution:
    """Both looks (module docstring), each in a transaction of its own on ``engine``."""

    def __init__(
        self,
        engine: Engine,
        metrics: Metrics,
        click_types: Collection[str],
        conversion_types: Collection[str],
        window_minutes: float = 0.0,
        weights: Mapping[str, float] | None = None,
    ) -> None:
        self.engine = engine
        self.metrics = metrics
        self.click_types = click_types
        self.conversion_types = conversion_types
        #: The attribution window (``GENREC_ATTRIBUTION_WINDOW_MINUTES``; 0: explicit only).
        self.window = timedelta(minutes=window_minutes)
        #: ``GENREC_EVENT_TYPES``: which types are positive (``attribution.is_positive``).
        self.weights: Mapping[str, float] = weights or {}

    def written(self, impressions: Sequence[NewImpression]) -> int:
        """The list's replica: ``impressions`` were just committed; how many waiting
        events they got. Called by the impression writer after each batch."""
        lists = {p.id: NamedList(p.user_id, p.session_id, p.items) for p in impressions}
        queued = {p.id: p for p in impressions}  # their experiments, without a read
        user_lists = [p for p in impressions if p.user_id is not None] if self.window else []

        def attribute(connection: Connection) -> list[NewInteraction]:
            rows = attribute_late(connection, lists)  # id-naming rows first: lock order
            if user_lists:
                rows += attribute_window_late(
                    connection, self._answered_by(connection, user_lists), self.window
                )
            return rows

        return self._look(LIST_WRITER, len(lists), attribute, queued)

    def recheck(self, rec_ids: Collection[str], window_rows: Sequence[NewInteraction] = ()) -> int:
        """The event's replica: events naming ``rec_ids`` (no list when they were
        attributed), and ``window_rows`` (positive events without an id that no list
        answered), were just committed; how many of them are attributed now. Called by
        the interaction writer after such a group."""
        ids = list(rec_ids)
        rows = [r for r in window_rows if r.ts is not None] if self.window else []

        def attribute(connection: Connection) -> list[NewInteraction]:
            found = attribute_late(connection, existing_impressions(connection, ids)) if ids else []
            if rows:
                found += attribute_window_late(
                    connection, self._logged(connection, rows), self.window
                )
            return found

        return self._look(EVENT_WRITER, len(ids) + len(rows), attribute, {})

    def _answered_by(
        self, connection: Connection, lists: Sequence[NewImpression]
    ) -> list[tuple[int, NewInteraction]]:
        """The waiting positive events without an id that one of ``lists`` (just
        written, each of a user) may answer: its user's, on an item it showed, at most
        ``window`` after it. One read (``repository.waiting_window_events``)."""
        shown: dict[str, list[tuple[frozenset[str], datetime]]] = {}
        for p in lists:
            shown.setdefault(p.user_id or "", []).append((frozenset(p.items), as_utc(p.created_at)))
        times = [at for each in shown.values() for _, at in each]
        waiting = waiting_window_events(
            connection, list(shown), min(times), max(times) + self.window
        )
        return [
            (row_id, row)
            for row_id, row in waiting
            if is_positive(row.type, self.weights)
            and row.ts is not None
            and any(
                row.item_id in items and at <= as_utc(row.ts) <= at + self.window
                for items, at in shown.get(row.user_id, [])
            )
        ]

    def _logged(
        self, connection: Connection, rows: Sequence[NewInteraction]
    ) -> list[tuple[int, NewInteraction]]:
        """``rows``, as logged and still waiting, with their row ids; none unless a
        written list answers one of them now (the common case: one impressions read)."""
        choice = window_matches(connection, rows, {}, self.window, later_lists=False)
        found = [r for r in rows if choice[id(r)] is not None]
        if not found:
            return []
        keys = {(r.user_id, r.item_id, as_utc(r.ts)) for r in found if r.ts is not None}
        times = [ts for _, _, ts in keys]
        waiting = waiting_window_events(
            connection, list({r.user_id for r in found}), min(times), max(times)
        )
        return [
            (row_id, row)
            for row_id, row in waiting
            if row.ts is not None and (row.user_id, row.item_id, as_utc(row.ts)) in keys
        ]

    def _look(
        self,
        by: str,
        how_many: int,
        attribute: Callable[[Connection], list[NewInteraction]],
        queued: Mapping[str, NewImpression],
    ) -> int:
        """One look (``attribute`` in a transaction of its own), then the counting."""
        try:
            with self.engine.begin() as connection:
                rows = attribute(connection)
                counted: Counted = experiment_events(
                    connection, queued, rows, self.click_types, self.conversion_types
                )
        except SQLAlchemyError as exc:
            self.metrics.database_errors.labels(operation="late_attribution").inc()
            log.warning(
                "late attribution of events of %d lists or events failed; they stay "
                "unattributed: %s",
                how_many,
                exc,
            )
            return 0
        if rows:
            named = sum(1 for row in rows if row.recommendation_id is not None)
            for rule, events in ((NAMED, named), (WINDOW, len(rows) - named)):
                if events:
                    self.metrics.attribution_late.labels(by=by, rule=rule).inc(events)
            count_experiment_events(self.metrics, counted)
            log.debug("late attribution (%s): %d events", by, len(rows))
        return len(rows)


class DeferredRecheck(WriterThread):
    """The event's replica's second look (``LateAttribution.recheck``), off the write path.

    Why a thread: most write groups hold a positive event without an id that no list
    answered (every new user's events do), and a look on the interaction writer's
    thread cost each such group a transaction (~1.8 ms on the development machine)
    before its requests were answered, while they were already durable. The look
    only has to begin after the group's commit, which a look queued after it does;
    here the groups of ``coalesce_s`` share one look. Closing runs what is queued.
    """

    def __init__(self, late: LateAttribution, coalesce_s: float = 0.05) -> None:
        super().__init__("late-attribution")
        self.late = late
        self.coalesce_s = coalesce_s
        self._ids: set[str] = set()  # guarded by _cond, as the rest
        self._rows: list[NewInteraction] = []
        self._running = False

    def submit(self, rec_ids: Collection[str], window_rows: Sequence[NewInteraction]) -> None:
        """Queue a look for a just-committed group's ``rec_ids`` and ``window_rows``."""
        with self._cond:
            if self._closing:  # shutting down: the thread may be gone, look here
                run_now = True
            else:
                run_now = False
                self._ids.update(rec_ids)
                self._rows.extend(window_rows)
                self._start_thread()
                self._cond.notify_all()
        if run_now:
            self._look(set(rec_ids), list(window_rows))

    def drain(self, timeout_s: float = 10.0) -> bool:
        """Wait until nothing is queued or being looked at (tests; shutdown)."""
        with self._cond:
            return self._cond.wait_for(
                lambda: not (self._ids or self._rows or self._running), timeout_s
            )

    def close(self, timeout_s: float = 5.0) -> None:
        """Run what is queued, then stop the thread."""
        self._close_thread(timeout_s)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._ids or self._rows) or self._closing)
                if not (self._ids or self._rows):
                    return  # closing, nothing left
                closing = self._closing
            if not closing:
                time.sleep(self.coalesce_s)  # let the next groups join this look
            with self._cond:
                ids, rows = self._ids, self._rows
                self._ids, self._rows = set(), []
                self._running = True
            try:
                self._look(ids, rows)
            finally:
                with self._cond:
                    self._running = False
                    self._cond.notify_all()

    def _look(self, ids: set[str], rows: list[NewInteraction]) -> None:
        try:
            self.late.recheck(ids, rows)
        except Exception:  # the look logs and counts database failures itself
            log.exception(
                "looking again for the lists of %d logged events failed", len(ids) + len(rows)
            )
