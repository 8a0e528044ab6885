"""Fixtures of the CLI tests: a private store and database, and a small clicks file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def cli_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point the CLI's settings at a store and a SQLite log under ``tmp_path``."""
    from app.core.config import get_settings

    monkeypatch.setenv("GENREC_STORE_DIR", str(tmp_path / "store"))
    monkeypatch.setenv("GENREC_DATABASE_URL", f"sqlite:///{tmp_path}/log.db")
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


@pytest.fixture
def env(cli_settings: Path) -> Path:
    """30 users in two taste groups of 6 items each, rated and timestamped, as a CSV."""
    csv = cli_settings / "clicks.csv"
    rows = ["user_id,item_id,rating,timestamp"]
    for u in range(30):
        for i in range(6):
            item = (u % 2) * 6 + i
            rows.append(f"u{u},i{item},{3 + (i % 3)},{1_700_000_000 + u * 10 + i}")
    csv.write_text("\n".join(rows) + "\n")
    return csv
