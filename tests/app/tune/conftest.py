"""A private, migrated Postgres database holding a small click log, for the tune-job tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import pytest
import torch

from app.core.db import make_engine, make_sessionmaker, session_scope, upgrade_database
from app.repository import NewInteraction, add_interactions
from tests.conftest import POSTGRES_ADMIN_URL, _service_missing, age_log, scratch_database

#: Users and items of the log: two taste groups (even / odd items), 15 clicks each.
N_USERS, N_ITEMS, PER_USER = 60, 40, 15


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture
def tune_db() -> Iterator[str]:
    """URL of a fresh migrated Postgres database (its own: workers claim every job in it)
    whose interaction log holds ``N_USERS`` users' clicks; dropped afterwards."""
    with ExitStack() as stack:
        try:
            url = stack.enter_context(scratch_database(POSTGRES_ADMIN_URL, "genrec_tune"))
        except Exception as exc:  # any connection failure means the service is missing
            _service_missing("PostgreSQL", exc)
        log_clicks(url)
        yield url


def log_clicks(url: str) -> None:
    """Migrate the database at ``url`` and log the clicks (see ``N_USERS``)."""
    upgrade_database(url)
    engine = make_engine(url)
    rows = [
        NewInteraction(f"user{u}", f"item{(u % 2) + 2 * ((u * 7 + k) % (N_ITEMS // 2))}", None)
        for u in range(N_USERS)
        for k in range(PER_USER)
    ]
    with session_scope(make_sessionmaker(engine)) as session:
        add_interactions(session, rows)
    engine.dispose()
    age_log(url)  # workers of their own process read it with the commit margin
