"""Prometheus counts of clicks and conversions per experiment variant, as events arrive.

When logged events are attributed to an experiment's list, they are counted in
``genrec_experiment_clicks`` / ``genrec_experiment_conversions`` under the
list's experiment, variant, model and version. Only attributed events are: an
event naming another user's list, or an item its list did not show, was left
unattributed by ``app.serving.attribution`` and is not counted (the item is
checked here again, as the results do, for events attributed before that rule). One indexed read (impressions by
primary key) per batch that has attributed click or conversion events, none
otherwise; this replica's unwritten impressions are looked up in memory.

An event attributed late (its list was written after it, by another replica;
``app.serving.late_attribution``) is counted by the replica that attributes it, once.

These are raw event counts for dashboards: a double click counts twice and the
experiment's window is not applied. ``GET /admin/experiments/{name}`` counts each
(list, item) once, within the window.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from app.core.metrics import Metrics
from app.repository import NewImpression, NewInteraction, experiment_impressions

#: (experiment, variant, model, version, "click" | "conversion") per counted event.
Counted = list[tuple[str, str, str, str, str]]


def experiment_events(
    db: Session | Connection,
    queued: Mapping[str, NewImpression],
    rows: Sequence[NewInteraction],
    click_types: Collection[str],
    conversion_types: Collection[str],
) -> Counted:
    """The attributed click and conversion events of ``rows`` on experiment lists.

    ``queued`` holds the queued impressions attribution found (``Attributed.queued``);
    every other attributed impression was in the database when attribution read it, so
    the read here, a later statement on the same connection, sees it too. (Asking the
    recorder again here missed an impression written in between: gone from its queue,
    and not in what attribution had read.)
    """
    wanted = [
        r
        for r in rows
        if r.impression_id is not None and (r.type in click_types or r.type in conversion_types)
    ]
    if not wanted:
        return []
    lists: dict[str, tuple[str, str, str, str, Sequence[str]]] = {}
    missing = []
    for row in wanted:
        assert row.impression_id is not None
        pending = queued.get(row.impression_id)
        if pending is None:
            missing.append(row.impression_id)
        elif pending.experiment is not None and pending.variant is not None:
            lists[pending.id] = (
                pending.experiment, pending.variant, pending.model, pending.version, pending.items
            )  # fmt: skip
    if missing:
        for rec_id, experiment, variant, model, version, items in experiment_impressions(
            db, missing
        ):
            lists[rec_id] = (experiment, variant, model, version, items)
    counted: Counted = []
    for row in wanted:
        found = lists.get(row.impression_id or "")
        if found is None or row.item_id not in found[4]:
            continue
        experiment, variant, model, version, _ = found
        if row.type in click_types:
            counted.append((experiment, variant, model, version, "click"))
        if row.type in conversion_types:
            counted.append((experiment, variant, model, version, "conversion"))
    return counted


def count(metrics: Metrics, counted: Counted) -> None:
    for experiment, variant, model, version, kind in counted:
        labels = {"experiment": experiment, "variant": variant, "model": model, "version": version}
        if kind == "click":
            metrics.experiment_clicks.labels(**labels).inc()
        else:
            metrics.experiment_conversions.labels(**labels).inc()
