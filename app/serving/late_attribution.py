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
  the same for the ones now written.

Each event found is checked exactly as at log time (``attribution.refusal``: a list of
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
Both may see each other: the event then goes to whichever ``UPDATE ... WHERE
impression_id IS NULL`` comes first; the other waits on the row's lock
(``repository.waiting_interactions`` locks in id order, so two looks cannot deadlock),
then finds it attributed, and ``RETURNING`` leaves it out of its count. An event
attributed at log time is never looked at (``impression_id`` is set). On SQLite (one
process) the queue-then-database read at log time already sees every list, and both
looks find nothing.

A look that fails (the database is down) is logged and counted
(``genrec_database_errors{operation="late_attribution"}``); the impressions and the
events stay written, and those events stay unattributed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import replace

from sqlalchemy import Engine
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from app.core.metrics import Metrics
from app.experiments.counting import Counted, experiment_events
from app.experiments.counting import count as count_experiment_events
from app.repository import (
    NamedList,
    NewImpression,
    NewInteraction,
    attribute_waiting,
    existing_impressions,
    waiting_interactions,
)
from app.serving.attribution import refusal

log = logging.getLogger(__name__)

#: ``genrec_attribution_late{by}``: which side attributed the event.
LIST_WRITER = "list_writer"
EVENT_WRITER = "event_writer"


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


class LateAttribution:
    """Both looks (module docstring), each in a transaction of its own on ``engine``."""

    def __init__(
        self,
        engine: Engine,
        metrics: Metrics,
        click_types: Collection[str],
        conversion_types: Collection[str],
    ) -> None:
        self.engine = engine
        self.metrics = metrics
        self.click_types = click_types
        self.conversion_types = conversion_types

    def written(self, impressions: Sequence[NewImpression]) -> int:
        """The list's replica: ``impressions`` were just committed; how many waiting
        events they got. Called by the impression writer after each batch."""
        lists = {p.id: NamedList(p.user_id, p.session_id, p.items) for p in impressions}
        queued = {p.id: p for p in impressions}  # their experiments, without a read
        return self._look(LIST_WRITER, len(lists), lambda _: lists, queued)

    def recheck(self, rec_ids: Collection[str]) -> int:
        """The event's replica: events naming ``rec_ids`` (no list when they were
        attributed) were just committed; how many of them are attributed now. Called
        by the interaction writer after such a group."""
        ids = list(rec_ids)
        return self._look(EVENT_WRITER, len(ids), lambda c: existing_impressions(c, ids), {})

    def _look(
        self,
        by: str,
        how_many: int,
        read_lists: Callable[[Connection], Mapping[str, NamedList]],
        queued: Mapping[str, NewImpression],
    ) -> int:
        """One look at the lists ``read_lists`` gives (known, or read by id)."""
        try:
            with self.engine.begin() as connection:
                lists = read_lists(connection)
                rows = attribute_late(connection, lists) if lists else []
                counted: Counted = experiment_events(
                    connection, queued, rows, self.click_types, self.conversion_types
                )
        except SQLAlchemyError as exc:
            self.metrics.database_errors.labels(operation="late_attribution").inc()
            log.warning(
                "late attribution of events naming %d lists failed; they stay unattributed: %s",
                how_many,
                exc,
            )
            return 0
        if rows:
            self.metrics.attribution_late.labels(by=by).inc(len(rows))
            count_experiment_events(self.metrics, counted)
            log.debug("late attribution (%s): %d events of %d lists", by, len(rows), len(lists))
        return len(rows)
