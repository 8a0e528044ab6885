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


def _log_old(engine: Engine) -> None:
    """A row written two hours ago: every read trains on it."""
    _log(engine, "old")
    _age(engine, "old", timedelta(hours=2))


def _assert_split(
    log_url: str, engine: Engine, cutoff: datetime, trained: set[str], later: str
) -> None:
    """The read trained on the old row alone and serving folds in ``later`` alone."""
    folded = _sides(log_url, engine, cutoff, trained)
    assert trained == {"old"}
    assert folded == {later}


def test_a_write_committed_after_the_read_is_folded_in(log_url: str, engine: Engine) -> None:
    _log_old(engine)
    with engine.connect() as writer, writer.begin():  # commits after the read
        add_interactions(writer, [NewInteraction(USER, "in-flight", 4.0)])  # stamped
        cutoff = log_cutoff(log_url)
        trained = _read(log_url, cutoff)  # the row is not committed yet
    _assert_split(log_url, engine, cutoff, trained, "in-flight")


@pytest.mark.parametrize(
    ("skewed", "offset"),
    [
        # a server whose clock lags the database's writes the row after the read
        pytest.param("app.repository.datetime", -SKEW, id="app-server-clock-behind"),
        # a worker whose clock runs ahead of the database's takes the cutoff
        pytest.param("training.data.log_reader.datetime", SKEW, id="worker-clock-ahead"),
    ],
)
def test_a_clock_off_the_databases_does_not_hide_a_later_write(
    log_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch, skewed: str, offset: timedelta
) -> None:
    _log_old(engine)
    monkeypatch.setattr(skewed, _clock(offset))
    cutoff = log_cutoff(log_url)
    trained = _read(log_url, cutoff)
    _log(engine, "after-read")
    _assert_split(log_url, engine, cutoff, trained, "after-read")


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
