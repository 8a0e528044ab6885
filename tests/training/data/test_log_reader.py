"""The interaction-log reader on SQLite and on the real Postgres.

The table is created here with SQLAlchemy Core to the schema in
docs/internals.md (not imported from ``app``: the reader must not depend on
it either). On Postgres each test gets its own schema, selected through the
URL's ``search_path``, so it never meets the service's own tables in the
shared test database.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    func,
    insert,
    text,
)
from sqlalchemy.engine import make_url

from training.data.errors import DataError
from training.data.log_reader import check_interaction_log, read_interaction_log

T0 = datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC)


def _interactions_table(metadata: MetaData) -> Table:
    return Table(
        "interactions",
        metadata,
        Column(
            "id",
            BigInteger().with_variant(Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        Column("user_id", String(256), nullable=False),
        Column("item_id", String(256), nullable=False),
        Column("rating", Float, nullable=True),
        Column("ts", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Index("ix_interactions_user_id_ts", "user_id", "ts"),
    )


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database (no ``interactions`` table yet) on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'log.db'}"
        return
    base: str = request.getfixturevalue("postgres_url")
    schema = f"log_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _log(url: str, rows: list[dict[str, object]]) -> None:
    engine = create_engine(url)
    metadata = MetaData()
    table = _interactions_table(metadata)
    metadata.create_all(engine)
    if rows:
        with engine.begin() as conn:
            conn.execute(insert(table), rows)
    engine.dispose()


def _row(user: str, item: str, rating: float | None, ts: datetime, created: datetime | None = None) -> dict[str, object]:  # fmt: skip
    return {
        "user_id": user,
        "item_id": item,
        "rating": rating,
        "ts": ts,
        "created_at": created or ts,
    }


def test_reads_every_record_with_unix_seconds(database_url: str) -> None:
    _log(
        database_url,
        [
            _row("u2", "i9", 4.0, T0),
            _row("u1", "i9", None, T0 + timedelta(seconds=30)),  # implicit event -> 1.0
            _row("u1", "i3", 2.5, T0 + timedelta(hours=1)),
        ],
    )
    data = read_interaction_log(database_url)
    assert data.explicit
    assert data.user_ids.ids == ("u1", "u2") and data.item_ids.ids == ("i3", "i9")
    records = [
        (data.user_ids.external(u), data.item_ids.external(i), float(r), int(t))
        for u, i, r, t in zip(data.users, data.items, data.ratings, data.timestamps, strict=True)
    ]
    start = int(T0.timestamp())
    assert records == [  # in id (arrival) order
        ("u2", "i9", 4.0, start),
        ("u1", "i9", 1.0, start + 30),
        ("u1", "i3", 2.5, start + 3600),
    ]


def test_all_ratings_missing_is_implicit(database_url: str) -> None:
    _log(database_url, [_row("a", "x", None, T0), _row("b", "x", None, T0)])
    data = read_interaction_log(database_url)
    assert not data.explicit and data.ratings.tolist() == [1.0, 1.0]


def test_until_is_the_complement_of_servings_after_cutoff(database_url: str) -> None:
    """Kept: event and arrival at or before ``until``; a late event with an old
    timestamp arrived after the cutoff, so serving folds it in and training must not.
    (Both sides on the same rows: tests/app/test_cutoff_rule.py.)"""
    cutoff = T0 + timedelta(minutes=10)
    _log(
        database_url,
        [
            _row("u", "before", 5.0, T0),
            _row("u", "at", 4.0, cutoff),
            _row("u", "after", 3.0, cutoff + timedelta(seconds=1)),
            _row("u", "late", 2.0, T0, created=cutoff + timedelta(minutes=5)),
        ],
    )
    data = read_interaction_log(database_url, until=cutoff)
    assert sorted(data.item_ids.ids) == ["at", "before"]
    naive = read_interaction_log(database_url, until=cutoff.replace(tzinfo=None))
    assert sorted(naive.item_ids.ids) == ["at", "before"]  # naive = UTC
    assert len(read_interaction_log(database_url)) == 4


def test_empty_log_and_missing_table(database_url: str) -> None:
    with pytest.raises(DataError, match="no table 'interactions'"):
        read_interaction_log(database_url)
    _log(database_url, [])
    with pytest.raises(DataError, match="has no interactions"):
        read_interaction_log(database_url)
    _log(database_url, [_row("u", "i", 1.0, T0 + timedelta(days=1))])
    # The one newer row is named, and why a read does not take it yet.
    with pytest.raises(
        DataError, match=r"has no interactions at or before .*; 1 row\(s\) logged after"
    ):
        read_interaction_log(database_url, until=T0)


def test_table_without_required_columns(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'other.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE interactions (id INTEGER PRIMARY KEY, user_id TEXT)"))
    engine.dispose()
    with pytest.raises(DataError, match="lacks column"):
        read_interaction_log(url)


def test_bad_url_and_unreachable_database() -> None:
    with pytest.raises(DataError, match="not a valid SQLAlchemy URL"):
        read_interaction_log("::nonsense::")
    with pytest.raises(DataError, match="cannot read the interaction log"):
        read_interaction_log("sqlite:////nonexistent-dir/sub/log.db")


def test_an_unparsable_url_is_named_without_its_password() -> None:
    """The URL SQLAlchemy cannot read was quoted whole, password included."""
    with pytest.raises(DataError) as refused:
        read_interaction_log("postgresql://u:s3cret@db:notaport/genrec")
    assert "'postgresql://u:***@db:notaport/genrec' is not a valid" in str(refused.value)


def test_an_unreachable_database_is_one_line_without_the_password() -> None:
    """SQLAlchemy's message added the driver's hint and a link on lines of their own."""
    for check in (read_interaction_log, check_interaction_log):
        with pytest.raises(DataError) as refused:
            check("postgresql://postgres:s3cret@127.0.0.1:1/x")
        message = str(refused.value)
        assert message.startswith("cannot read the interaction log at postgresql")
        assert "Connection refused" in message
        assert "\n" not in message and "s3cret" not in message


def test_typed_events_are_read_through_their_weights(database_url: str) -> None:
    """Negative and zero-weight types are left out (never positives, even with a rating);
    a kept type without a rating reads as its weight; untyped rows read as before."""
    engine = create_engine(database_url)
    metadata = MetaData()
    table = _interactions_table(metadata)
    table.append_column(Column("type", String(32), nullable=True))
    metadata.create_all(engine)
    rows = [
        {**_row("u1", "i1", None, T0), "type": "view"},
        {**_row("u1", "i2", None, T0), "type": "dislike"},
        {**_row("u1", "i3", 1.0, T0), "type": "dislike"},  # a rated dislike: still out
        {**_row("u1", "i4", 5.0, T0), "type": "purchase"},  # rated: keeps its rating
        {**_row("u1", "i5", None, T0), "type": "hover"},  # zero weight: out
        {**_row("u1", "i6", None, T0), "type": "retired"},  # not in the weights: out
        {**_row("u2", "i1", None, T0), "type": None},  # untyped click
    ]
    with engine.begin() as conn:
        conn.execute(insert(table), rows)
    engine.dispose()
    weights = {"view": 0.25, "dislike": -1.0, "purchase": 3.0, "hover": 0.0}
    data = read_interaction_log(database_url, event_weights=weights)
    records = [
        (data.user_ids.external(u), data.item_ids.external(i), float(r))
        for u, i, r in zip(data.users, data.items, data.ratings, strict=True)
    ]
    assert records == [("u1", "i1", 0.25), ("u1", "i4", 5.0), ("u2", "i1", 1.0)]
    # The default weights (the service's default vocabulary) drop a dislike too.
    default = read_interaction_log(database_url)
    assert "i2" not in default.item_ids.ids and "i3" not in default.item_ids.ids


def _typed_log(url: str, rows: list[dict[str, object]]) -> None:
    engine = create_engine(url)
    metadata = MetaData()
    table = _interactions_table(metadata)
    table.append_column(Column("type", String(32), nullable=True))
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(table), rows)
    engine.dispose()


def test_a_rating_read_of_a_mixed_log_leaves_out_the_unrated_rows(database_url: str) -> None:
    """Clicks beside ratings are not 1-star ratings: a read for a rating model keeps the
    rated rows alone, whatever their type; a top-k read keeps every row as before."""
    _typed_log(
        database_url,
        [
            {**_row("u1", "i1", 5.0, T0), "type": None},
            {**_row("u1", "i2", None, T0), "type": None},  # untyped click
            {**_row("u2", "i1", 4.0, T0), "type": "purchase"},  # rated typed event
            {**_row("u2", "i3", None, T0), "type": "view"},  # typed, unrated
            {**_row("u3", "i3", None, T0), "type": "click"},  # a user with no rating
        ],
    )
    rated = read_interaction_log(database_url, ratings_only=True)
    records = [
        (rated.user_ids.external(u), rated.item_ids.external(i), float(r))
        for u, i, r in zip(rated.users, rated.items, rated.ratings, strict=True)
    ]
    assert records == [("u1", "i1", 5.0), ("u2", "i1", 4.0)]
    assert rated.explicit
    every = read_interaction_log(database_url)
    assert len(every) == 5 and sorted(every.ratings.tolist()) == [0.25, 1.0, 1.0, 4.0, 5.0]


def test_a_rating_read_of_a_log_without_ratings_reads_the_weights(database_url: str) -> None:
    """No row carries a rating: nothing to prefer, so the typed events' weights are read
    (docs/tuning.md, "On the service"), as a top-k read does."""
    _typed_log(
        database_url,
        [
            {**_row("u1", "i1", None, T0), "type": "view"},
            {**_row("u1", "i2", None, T0), "type": "purchase"},
            {**_row("u2", "i1", None, T0), "type": None},
        ],
    )
    rated = read_interaction_log(database_url, ratings_only=True)
    every = read_interaction_log(database_url)
    assert rated.ratings.tolist() == every.ratings.tolist() == [0.25, 3.0, 1.0]
    assert rated.explicit == every.explicit
