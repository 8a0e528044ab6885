"""No acknowledged interaction falls between a trained version and serving's fold-in.

A version trained from the log records the cutoff of its read; serving folds in every
row after it (``training.data.cutoff``). A row the read did not see must therefore be
dated after the cutoff. Two ways one was not, each run here on real SQLite and Postgres
with the service's own write (``add_interactions``), cutoff (``log_cutoff``), read and
fold-in query:

* a write that started before the read and committed after it (group commit, a write
  waiting on an erasure's lock): its row was stamped before the cutoff, yet invisible
  to the read;
* clocks that disagree: ``created_at`` came from the app server's clock, the cutoff
  from the worker's, so rows a lagging server wrote after the read (or any server wrote
  after the read of a worker running ahead) were dated before the cutoff.

Each test also checks the partition itself: every row on exactly one side.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select, update

from app.core.db import make_engine, make_sessionmaker, session_scope, upgrade_database
from app.core.db_time import database_now
from app.db_models import Interaction
from app.repository import NewInteraction, add_interactions, user_interactions
from tests.conftest import COMMIT_MARGIN
from training.data.log_reader import log_cutoff, read_interaction_log

USER = "u1"
#: An app server's or worker's clock this far off the database's.
SKEW = timedelta(hours=1)


@pytest.fixture
def log_url(blank_database_url: str) -> str:
    """A migrated log on each backend."""
    upgrade_database(blank_database_url)
    return blank_database_url


@pytest.fixture
def engine(log_url: str) -> Iterator[Engine]:
    engine = make_engine(log_url)
    yield engine
    engine.dispose()


def _log(engine: Engine, *items: str) -> None:
    with engine.begin() as conn:
        add_interactions(conn, [NewInteraction(USER, item, 4.0) for item in items])


def _age(engine: Engine, item: str, by: timedelta) -> None:
    """Date ``item``'s row ``by`` earlier: written that long ago, long committed."""
    with engine.begin() as conn:
        conn.execute(
            update(Interaction)
            .where(Interaction.item_id == item)
            .values(created_at=database_now(-by.total_seconds()), ts=datetime.now(UTC) - by)
        )


def _sides(log_url: str, engine: Engine, cutoff: datetime, trained: set[str]) -> set[str]:
    """What serving folds in after ``cutoff``; checks that it and ``trained`` partition
    the whole log."""
    with session_scope(make_sessionmaker(engine)) as session:
        folded = {r.item_id for r in user_interactions(session, USER, after=cutoff)}
        logged = set(session.scalars(select(Interaction.item_id)))
    assert not trained & folded  # nothing trained on and folded in again
    assert trained | folded == logged  # nothing lost between the two
    return folded


def _read(log_url: str, cutoff: datetime) -> set[str]:
    data = read_interaction_log(log_url, until=cutoff)
    return {data.item_ids.ids[i] for i in data.items}


def test_a_write_committed_after_the_read_is_folded_in(log_url: str, engine: Engine) -> None:
    _log(engine, "old")
    _age(engine, "old", timedelta(hours=2))
    with engine.connect() as writer, writer.begin():  # commits after the read
        add_interactions(writer, [NewInteraction(USER, "in-flight", 4.0)])  # stamped
        cutoff = log_cutoff(log_url)
        trained = _read(log_url, cutoff)  # the row is not committed yet
    folded = _sides(log_url, engine, cutoff, trained)

    assert trained == {"old"}
    assert folded == {"in-flight"}


def test_an_app_server_clock_behind_does_not_hide_a_later_write(
    log_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    _log(engine, "old")
    _age(engine, "old", timedelta(hours=2))
    cutoff = log_cutoff(log_url)
    trained = _read(log_url, cutoff)
    monkeypatch.setattr("app.repository.datetime", _clock(-SKEW))
    _log(engine, "after-read")  # by a server whose clock lags the database's
    folded = _sides(log_url, engine, cutoff, trained)

    assert trained == {"old"}
    assert folded == {"after-read"}


def test_a_worker_clock_ahead_does_not_hide_a_later_write(
    log_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    _log(engine, "old")
    _age(engine, "old", timedelta(hours=2))
    monkeypatch.setattr("training.data.log_reader.datetime", _clock(SKEW))
    cutoff = log_cutoff(log_url)  # by a worker whose clock runs ahead of the database's
    trained = _read(log_url, cutoff)
    _log(engine, "after-read")
    folded = _sides(log_url, engine, cutoff, trained)

    assert trained == {"old"}
    assert folded == {"after-read"}


def test_the_cutoff_is_the_database_clock_less_the_margin(log_url: str, engine: Engine) -> None:
    before = _database_clock(engine)
    cutoff = log_cutoff(log_url)
    after = _database_clock(engine)

    assert cutoff.tzinfo is not None and cutoff.microsecond % 1000 == 0
    assert before - COMMIT_MARGIN - timedelta(milliseconds=1) < cutoff
    assert cutoff <= after - COMMIT_MARGIN
    assert timedelta(seconds=30) <= COMMIT_MARGIN  # longer than any write transaction


def _database_clock(engine: Engine) -> datetime:
    with engine.connect() as conn:
        now = conn.execute(select(database_now())).scalar_one()
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def _clock(offset: timedelta) -> type[datetime]:
    """``datetime`` whose ``now`` is ``offset`` off the real clock: a machine's skew."""

    class Skewed(datetime):
        @classmethod
        def now(cls, tz: object = None) -> datetime:  # type: ignore[override]
            return datetime.now(UTC if tz is None else tz) + offset  # type: ignore[arg-type]

    return Skewed
