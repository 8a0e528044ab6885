"""Training's log read and serving's post-cutoff reads partition the log, on both backends.

The same rows (event and arrival times before, at and after a cutoff, to the
microsecond, ties included) go into a database migrated to the service's
schema; then the training reader (``read_interaction_log(until=cutoff)``) and
both serving queries (``user_interactions`` and the micro-batch
``users_interactions`` with ``after=cutoff``) run on them. Every row must be
in exactly one side: a version trained up to the cutoff plus what serving
folds in is the whole log, nothing twice.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.core.db import make_engine, make_sessionmaker, session_scope, upgrade_database
from app.db_models import Interaction
from app.repository import user_interactions, users_interactions
from training.data.log_reader import read_interaction_log

#: A cutoff as the retrain runner writes it (whole milliseconds).
CUTOFF = datetime(2026, 11, 23, 10, 10, 0, 123000, tzinfo=UTC)
TIMES = {
    "1s-before": CUTOFF - timedelta(seconds=1),
    "1us-before": CUTOFF - timedelta(microseconds=1),
    "at": CUTOFF,
    "1us-after": CUTOFF + timedelta(microseconds=1),
    "1s-after": CUTOFF + timedelta(seconds=1),
}
USERS = ("u1", "u2", "u3")


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database migrated to the service's schema; on Postgres a private schema of its own."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'log.db'}"
        upgrade_database(url)
        yield url
        return
    base: str = request.getfixturevalue("postgres_url")
    schema = f"cutoff_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    rendered = (
        make_url(base)
        .update_query_dict({"options": f"-csearch_path={schema}"})
        .render_as_string(hide_password=False)
    )
    try:
        upgrade_database(rendered)
        yield rendered
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def test_training_and_serving_reads_partition_the_log(database_url: str) -> None:
    rows = {}  # (user, item) -> (event time, arrival time)
    for n, (event, arrival) in enumerate(itertools.product(TIMES, TIMES)):
        rows[(USERS[n % len(USERS)], f"ts:{event}/arrived:{arrival}")] = (
            TIMES[event],
            TIMES[arrival],
        )
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    try:
        with session_scope(sessions) as session:
            session.add_all(
                Interaction(user_id=u, item_id=i, rating=3.0, ts=ts, created_at=arrived)
                for (u, i), (ts, arrived) in rows.items()
            )
        with session_scope(sessions) as session:
            one_by_one = {
                (user, r.item_id)
                for user in USERS
                for r in user_interactions(session, user, after=CUTOFF)
            }
            batched = {
                (user, r.item_id)
                for user, logged in users_interactions(session, USERS, after=CUTOFF).items()
                for r in logged
            }
    finally:
        engine.dispose()
    data = read_interaction_log(database_url, until=CUTOFF)
    trained = set(
        zip(
            (data.user_ids.ids[u] for u in data.users),
            (data.item_ids.ids[i] for i in data.items),
            strict=True,
        )
    )

    assert one_by_one == batched  # serving's two queries agree
    assert not trained & one_by_one  # nothing both trained on and folded in again
    assert trained | one_by_one == set(rows)  # nothing lost between the two
    # and the line falls where the rule says: both times at or before the cutoff
    assert trained == {key for key, (ts, arrived) in rows.items() if max(ts, arrived) <= CUTOFF}
    assert len(trained) == 9 and len(one_by_one) == 16
