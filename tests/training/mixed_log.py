"""A service interaction log in a scratch Postgres database: ratings and clicks mixed.

The table is created with SQLAlchemy Core to the schema in docs/internals.md (as
``tests/training/data/test_log_reader.py`` does), not from ``app``: the training
code under test reads the log without the web service's code.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Float,
    MetaData,
    String,
    Table,
    create_engine,
    insert,
)

T0 = datetime(2026, 11, 2, 9, 0, 0, tzinfo=UTC)


def write_log(url: str, rows: list[tuple[str, str, float | None]]) -> None:
    """Create ``interactions`` at ``url`` and log ``rows`` (user, item, rating or None
    for a click), one second apart, all well before any read's cutoff."""
    metadata = MetaData()
    table = Table(
        "interactions",
        metadata,
        Column("id", BigInteger, primary_key=True, autoincrement=True),
        Column("user_id", String(256), nullable=False),
        Column("item_id", String(256), nullable=False),
        Column("rating", Float, nullable=True),
        Column("ts", DateTime(timezone=True), nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
    )
    engine = create_engine(url)
    try:
        metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(
                insert(table),
                [
                    {
                        "user_id": user,
                        "item_id": item,
                        "rating": rating,
                        "ts": T0 + timedelta(seconds=n),
                        "created_at": T0 + timedelta(seconds=n),
                    }
                    for n, (user, item, rating) in enumerate(rows)
                ],
            )
    finally:
        engine.dispose()


def ratings_and_clicks(
    n_users: int, rated: int, clicked: int, seed: int = 0, ratings: tuple[float, ...] = (4.0, 5.0)
) -> list[tuple[str, str, float | None]]:
    """Each user rates ``rated`` items (values drawn from ``ratings``) and clicks
    ``clicked`` other items without rating them, over a catalogue of 60 items."""
    rng = np.random.default_rng(seed)
    rows: list[tuple[str, str, float | None]] = []
    for u in range(n_users):
        items = rng.choice(60, rated + clicked, replace=False)
        rows += [(f"u{u}", f"i{i}", float(rng.choice(ratings))) for i in items[:rated]]
        rows += [(f"u{u}", f"i{i}", None) for i in items[rated:]]
    return rows
