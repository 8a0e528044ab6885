"""Removing items from the catalog: ``DELETE /v1/items/{id}`` and ``genrec items remove``.

Why soft: a removed item must leave every list on every replica, and replicas
learn of catalog changes only by polling rows by ``change_epoch``
(``app.catalog.sync``); a deleted row leaves nothing to poll. So removal sets
``items.removed_at`` and takes a new epoch like any write
(``app.repository.remove_items``), and a later PUT (or import) of the id
restores the item. The item's interactions stay in the log (history is
history), and models keep its row: it is masked from lists, not retrained away
(``app.serving.removed``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app.catalog.items import CatalogError
from app.core.db import (
    command_sessions,
    database_problem,
    session_scope,
)
from app.repository import remove_items as remove_rows
from app.repository import restore_items as restore_rows
from app.schemas_fields import id_problem

#: How many unknown ids a refusal names.
_LIST_IDS = 10


class UnknownItems(CatalogError):
    """Ids that are not in the catalog (``ids``); nothing was removed."""

    def __init__(self, ids: Sequence[str]) -> None:
        self.ids = list(ids)
        listed = ", ".join(repr(i) for i in self.ids[:_LIST_IDS])
        more = f" and {len(self.ids) - _LIST_IDS} more" if len(self.ids) > _LIST_IDS else ""
        super().__init__(
            f"not in the catalog: {listed}{more}; nothing was removed (add an item with "
            "PUT /v1/items/{item_id} or genrec items import)"
        )


def remove_items(sessions: sessionmaker[Session], ids: Sequence[str]) -> dict[str, str]:
    """Remove ``ids`` in one transaction; per id "removed" or "already_removed".

    All or nothing: when any id is not in the catalog, ``UnknownItems`` names them
    and nothing is written (a typo must not half-apply a list of removals).
    """
    distinct = list(dict.fromkeys(ids))
    with session_scope(sessions) as session:
        outcome = remove_rows(session, distinct, datetime.now(UTC))
        unknown = [item_id for item_id, result in outcome.items() if result == "unknown"]
        if unknown:
            raise UnknownItems(unknown)  # rolls the transaction back
    return outcome


def restore_items(sessions: sessionmaker[Session], ids: Sequence[str]) -> dict[str, str]:
    """Restore removed ``ids`` as stored, in one transaction; per id "restored",
    "not_removed" (live: a second click, or another writer restored it meanwhile, with
    whatever content it wrote, which is kept) or "unknown" (not in the catalog).

    The dashboard's Restore. A PUT restores too, with the content it carries; this
    changes the removal only (``app.repository.restore_items`` says why).
    """
    distinct = list(dict.fromkeys(ids))
    with session_scope(sessions) as session:
        return restore_rows(session, distinct, datetime.now(UTC))


def check_id(item_id: str, max_id_length: int) -> None:
    """An id the catalog could hold (as PUT checks it)."""
    if reason := id_problem(item_id, "item_id", max_id_length):
        raise CatalogError(reason)


def remove_from_database(
    database_url: str, ids: Sequence[str], max_id_length: int = 256, migrate: bool = True
) -> dict[str, int]:
    """``genrec items remove``: remove ``ids`` from the catalog at ``database_url``.

    Running servers drop the items from their lists at their next reload poll.
    Returns counts per outcome ("removed", "already_removed").
    """
    for item_id in ids:
        check_id(item_id, max_id_length)
    try:
        with command_sessions(database_url, migrate) as sessions:
            outcome = remove_items(sessions, ids)
    except SQLAlchemyError as exc:
        raise CatalogError(
            f"cannot write the catalog at {database_problem(database_url, exc)}"
        ) from None
    counts = {"removed": 0, "already_removed": 0}
    for result in outcome.values():
        counts[result] += 1
    return counts
