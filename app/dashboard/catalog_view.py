"""The Catalog page's search and item card.

Items come from two places: the service's catalog table (``PUT /v1/items``,
``genrec items import``) and the served default model's artifact (the item
ids and titles it was trained on, e.g. ML-100K's movie titles). A search
matches either, by id or title, case-insensitively.

An item's interaction count is the number of training rows the served model
holds for it plus the events logged for it since (``interactions`` table).
The log count is a scan (the log is indexed by user, not item); it runs for
one item at a time, on an operator's click.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from app.core.db import session_scope
from app.db_models import Interaction, Item
from app.repository import ItemRow, get_item
from app.serving.loaded import LoadedModel

SEARCH_LIMIT = 50


@dataclass(frozen=True)
class ItemHit:
    item_id: str
    title: str | None
    in_catalog: bool
    in_model: bool


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


def _like(query: str) -> str:
    escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search_items(
    sessions: sessionmaker[Session], model: LoadedModel | None, query: str
) -> list[ItemHit]:
    """Items whose id or title contains ``query`` (at most ``SEARCH_LIMIT``), exact id first."""
    query = query.strip()
    if not query:
        return []
    pattern = _like(query.lower())
    with session_scope(sessions) as session:
        rows = session.execute(
            select(Item.item_id, Item.title)
            .where(
                or_(
                    func.lower(Item.item_id).like(pattern, escape="\\"),
                    func.lower(Item.title).like(pattern, escape="\\"),
                )
            )
            .order_by(Item.item_id)
            .limit(SEARCH_LIMIT)
        ).all()
    hits: dict[str, ItemHit] = {
        item_id: ItemHit(item_id, title, True, model is not None and item_id in model.item_index)
        for item_id, title in rows
    }
    if model is not None:
        needle = query.lower()
        for index, item_id in enumerate(model.item_ids):
            if len(hits) >= SEARCH_LIMIT:
                break
            title = model.titles[index]
            if item_id not in hits and (
                needle in item_id.lower() or (title is not None and needle in title.lower())
            ):
                hits[item_id] = ItemHit(item_id, title, False, True)
    return sorted(hits.values(), key=lambda h: (h.item_id.lower() != query.lower(), h.item_id))


def catalog_titles(sessions: sessionmaker[Session], item_ids: list[str]) -> dict[str, str]:
    """Titles the catalog table holds for ``item_ids`` (for items the model has no title for)."""
    if not item_ids:
        return {}
    with session_scope(sessions) as session:
        rows = session.execute(
            select(Item.item_id, Item.title).where(
                Item.item_id.in_(item_ids), Item.title.is_not(None)
            )
        ).all()
    return {item_id: title for item_id, title in rows if title is not None}


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
