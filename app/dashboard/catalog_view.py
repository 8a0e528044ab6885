"""The Catalog page's search and item card.

Items come from two places: the service's catalog table (``PUT /v1/items``,
``genrec items import``) and the served default model's artifact (the item
ids and titles it was trained on, e.g. ML-100K's movie titles). A search
matches either, by id or title, case-insensitively.

An item's interaction count is the number of training rows the served model
holds for it plus the events logged for it since (``interactions`` table).
The log count is a scan (the log is indexed by user, not item); it runs for
one item at a time, on an operator's click.

A removed item (``DELETE /v1/items/{id}``, ``app.catalog.removal``) keeps its
row, so it is still found and shown, with its removal time: the operator must
be able to find it to restore it, and must not take it for a live one.
"""

from __future__ import annotations

import re
import weakref
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import case, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from app.core.db import session_scope
from app.db_models import Interaction, Item
from app.repository import ITEM_LOOKUP_CHUNK, ItemRow, as_utc, get_item
from app.serving.loaded import LoadedModel

SEARCH_LIMIT = 50


@dataclass(frozen=True)
class ItemHit:
    item_id: str
    title: str | None
    in_catalog: bool
    in_model: bool
    removed_at: datetime | None = None  # removed from the catalog (its row stays)


@dataclass
class ItemCard:
    item_id: str
    title: str | None
    row: ItemRow | None
    model: str | None
    model_version: str | None
    training_interactions: int | None
    logged_interactions: int | None
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def removed_at(self) -> datetime | None:
        """When the item was removed from the catalog; None for a live or model-only item."""
        return self.row.removed_at if self.row is not None else None


def _like(query: str) -> str:
    escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@dataclass(frozen=True)
class SearchResult:
    """The hits shown (at most ``SEARCH_LIMIT``) and how many items match in all.

    ``total`` is the number of distinct matching items when it is known exactly: always,
    unless the catalog holds more matches than one page and the model matches too (which
    of the model's matches are also catalog matches is then not read); ``in_catalog`` and
    ``in_model`` count each source's matches.
    """

    hits: list[ItemHit]
    total: int | None
    in_catalog: int
    in_model: int

    @property
    def truncated(self) -> bool:
        return self.total is None or self.total > len(self.hits)


def natural_key(item_id: str) -> list[tuple[int, str]]:
    """Ids ordered as people count: "2" before "10", "item9" before "item10"."""
    parts = re.split(r"(\d+)", item_id, flags=re.ASCII)  # text, digits, text, ...
    key = [(int(part), "") if n % 2 else (-1, part.lower()) for n, part in enumerate(parts)]
    return [*key, (-1, item_id)]  # ties ("a1" and "A01") in code point order


#: (model, its ids and titles lowercased) of the last model searched: a search reads every
#: id and title of the model, and lowering them each time was most of its cost. A weak
#: reference: a model swapped out of serving is not kept alive (on its device) by this.
_LOWERED: list[tuple[weakref.ref[LoadedModel], list[tuple[str, str]]]] = []


def _lowered(model: LoadedModel) -> list[tuple[str, str]]:
    if _LOWERED and _LOWERED[0][0]() is model:
        return _LOWERED[0][1]
    lowered = [
        (item_id.lower(), (title or "").lower())
        for item_id, title in zip(model.item_ids, model.titles, strict=True)
    ]
    _LOWERED[:] = [(weakref.ref(model), lowered)]
    return lowered


def search_items(
    sessions: sessionmaker[Session], model: LoadedModel | None, query: str
) -> SearchResult:
    """Items whose id or title contains ``query`` (case-insensitively): the item whose id
    is ``query`` first, then by id (``natural_key``); at most ``SEARCH_LIMIT``, and how
    many match.

    One bounded statement reads the catalog: its first page of matches (the exact id
    first) with the count of all of them (a window count over the scan that the
    ``LIKE '%…%'`` makes anyway). The model's ids and titles are matched in memory,
    all of them, so that its count is exact too. A second statement looks up which of
    the shown model items the catalog holds (at most ``SEARCH_LIMIT`` primary keys).
    """
    if not query:
        return SearchResult([], 0, 0, 0)
    needle = query.lower()
    pattern = _like(needle)
    matched: list[str] = []
    if model is not None:
        matched = [
            model.item_ids[index]
            for index, (item_id, title) in enumerate(_lowered(model))
            if needle in item_id or needle in title
        ]
    with session_scope(sessions) as session:
        rows = session.execute(
            select(Item.item_id, Item.title, Item.removed_at, func.count().over())
            .where(
                or_(
                    func.lower(Item.item_id).like(pattern, escape="\\"),
                    func.lower(Item.title).like(pattern, escape="\\"),
                )
            )
            .order_by(case((Item.item_id == query, 0), else_=1), Item.item_id)
            .limit(SEARCH_LIMIT)
        ).all()
        in_catalog = int(rows[0][3]) if rows else 0
        titles: dict[str, str | None] = {item_id: title for item_id, title, _, _ in rows}
        removed = {item_id: as_utc(at) for item_id, _, at, _ in rows if at is not None}
        page = set(titles)
        candidates = dict.fromkeys([*titles, *matched])
        shown = sorted(candidates, key=lambda i: (i != query, natural_key(i)))[:SEARCH_LIMIT]
        # A shown model item may be in the catalog beyond its first page of matches, or
        # under a title that does not match: those few are asked for by primary key.
        unknown = [item_id for item_id in shown if item_id not in titles]
        if unknown:
            stored = select(Item.item_id, Item.title, Item.removed_at).where(
                Item.item_id.in_(unknown)
            )
            for item_id, title, at in session.execute(stored):
                titles[item_id] = title
                if at is not None:
                    removed[item_id] = as_utc(at)
    hits = []
    for item_id in shown:
        index = model.item_index.get(item_id) if model is not None else None
        title = titles.get(item_id)
        if title is None and model is not None and index is not None:
            title = model.titles[index]
        hits.append(
            ItemHit(item_id, title, item_id in titles, index is not None, removed.get(item_id))
        )
    total: int | None
    if in_catalog <= len(rows):  # every catalog match was read: the union is exact
        total = in_catalog + sum(1 for item_id in matched if item_id not in page)
    else:  # which model matches are among the unread catalog matches is not known
        total = None if matched else in_catalog
    return SearchResult(hits, total, in_catalog, len(matched))


@dataclass(frozen=True)
class CatalogNotes:
    """What the catalog table adds to items a page shows from a model: the titles the
    model lacks, and which of them are removed (when; None where only this server's
    removed set, not the table, could say)."""

    titles: dict[str, str]
    removed: dict[str, datetime | None]


def catalog_notes(sessions: sessionmaker[Session], item_ids: list[str]) -> CatalogNotes:
    """Catalog titles and removal times of ``item_ids`` (rows with neither are not read)."""
    titles: dict[str, str] = {}
    removed: dict[str, datetime | None] = {}
    with session_scope(sessions) as session:
        for start in range(0, len(item_ids), ITEM_LOOKUP_CHUNK):
            rows = session.execute(
                select(Item.item_id, Item.title, Item.removed_at).where(
                    Item.item_id.in_(item_ids[start : start + ITEM_LOOKUP_CHUNK]),
                    or_(Item.title.is_not(None), Item.removed_at.is_not(None)),
                )
            )
            for item_id, title, at in rows:
                if title is not None:
                    titles[item_id] = title
                if at is not None:
                    removed[item_id] = as_utc(at)
    return CatalogNotes(titles, removed)


def item_card(
    sessions: sessionmaker[Session], model: LoadedModel | None, item_id: str
) -> ItemCard | None:
    """Metadata and interaction counts of one item; None when neither source knows it."""
    with session_scope(sessions) as session:
        row = get_item(session, item_id)
        logged = int(
            session.execute(
                select(func.count()).select_from(Interaction).where(Interaction.item_id == item_id)
            ).scalar_one()
        )
    index = model.item_index.get(item_id) if model is not None else None
    if row is None and index is None:
        return None
    training = None
    title = row.title if row is not None else None
    if model is not None and index is not None:
        # CSR rows are users: the item's column holds one entry per training row with it.
        training = int(np.count_nonzero(model.history.indices == index))
        title = title or model.titles[index]
    return ItemCard(
        item_id=item_id,
        title=title,
        row=row,
        model=model.name if model is not None else None,
        model_version=model.version if model is not None else None,
        training_interactions=training,
        logged_interactions=logged,
        attributes=dict(row.attributes) if row is not None else {},
    )
