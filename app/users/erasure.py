"""Erasing users: delete their logged rows and record the erasure, in one transaction.

What is deleted: every row of the user in ``interactions`` and ``impressions``,
the only tables holding per-user rows (experiment assignment is a hash of the
id, never stored; jobs, the catalog and dashboard sessions hold no user ids).
What is recorded: the id, when, and the erasure's epoch (``erased_users``), which
every server polls (``app.users.sync``) to stop serving the user's cached state
and the training history that versions trained before the erasure hold
(``app.serving.erased``). An id that has no rows is erased all the same: it may
still be in a trained version or a cache, and an operator's request must not
depend on what the log happens to hold.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app.core.db import (
    command_sessions,
    database_problem,
    session_scope,
)
from app.repository import erase_users as erase_rows
from app.schemas_fields import id_problem


class ErasureError(Exception):
    """An erasure that cannot be done (a bad id, an unreachable database): its message
    says why, for an operator."""


@dataclass(frozen=True)
class Erased:
    """What one erasure did: when, and the rows deleted per table (all its users)."""

    erased_at: datetime
    deleted: dict[str, int]


def utc_now() -> datetime:
    return datetime.now(UTC)


def erase_users(
    sessions: sessionmaker[Session],
    user_ids: Sequence[str],
    clock: Callable[[], datetime] = utc_now,
) -> Erased:
    """Erase ``user_ids`` in one transaction (``interactions``, ``impressions``, and the
    record in ``erased_users``); the erasure's time is ``clock``'s after the deletes
    (``app.repository.erase_users`` says why)."""
    distinct = list(dict.fromkeys(user_ids))
    with session_scope(sessions) as session:
        deleted, erased_at = erase_rows(session, distinct, clock)
    return Erased(erased_at, deleted)


def check_user_id(user_id: str, max_id_length: int) -> None:
    """An id the log could hold (as the API checks it)."""
    if reason := id_problem(user_id, "user_id", max_id_length):
        raise ErasureError(reason)


def erase_from_database(
    database_url: str, user_ids: Sequence[str], max_id_length: int = 256, migrate: bool = True
) -> Erased:
    """``genrec users erase``: erase ``user_ids`` from the database at ``database_url``.

    Every id is checked before anything is written. Running servers stop serving the
    users' cached and trained state at their next reload poll.
    """
    for user_id in user_ids:
        check_user_id(user_id, max_id_length)
    try:
        with command_sessions(database_url, migrate) as sessions:
            return erase_users(sessions, user_ids)
    except SQLAlchemyError as exc:
        raise ErasureError(
            f"cannot erase users in the database at {database_problem(database_url, exc)}"
        ) from None
