"""A tiny ConvMF trained once per session on ``catalog_data.text_ratings``.

Six items (three per topic) are left out of training entirely and enter only
through the catalog, as items added after training do.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from app.core.db import make_engine, make_sessionmaker, session_scope, upgrade_database
from models_store import ModelStore
from tests.app.catalog_data import TINY_CONVMF, TextRatings, text_ratings
from training.pipeline import train_and_save


@pytest.fixture(scope="session")
def data() -> TextRatings:
    return text_ratings(seed=0)


@pytest.fixture(scope="session")
def convmf_store(data: TextRatings, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Production convmf v1 (tiny, seconds) and a non-text-aware pmf v1."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("catalog-store")
    store = ModelStore(root)
    train_and_save(store, "convmf", data.train, dict(TINY_CONVMF), source="text", promote=True)
    pmf = {k: TINY_CONVMF[k] for k in ("factors", "lambda_u", "lambda_v", "epochs")}
    train_and_save(store, "pmf", data.train, pmf, source="text", promote=True)
    return root


@pytest.fixture
def store(convmf_store: Path, tmp_path: Path) -> ModelStore:
    """A private copy a test may promote new versions into."""
    shutil.copytree(convmf_store, tmp_path / "store")
    return ModelStore(tmp_path / "store")


# --------------------------------------------------------------------------- databases


@pytest.fixture(params=["sqlite", "postgres"])
def both_sessions(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[sessionmaker[Session]]:
    url = (
        f"sqlite:///{tmp_path}/sync.db"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    yield from _catalog_sessions(url)


@pytest.fixture
def pg_sessions(postgres_url: str) -> Iterator[sessionmaker[Session]]:
    """Postgres only: SQLite has one writer at a time, so no transaction commits inside
    another there (and a skipped SQLite variant would be a skip in CI)."""
    yield from _catalog_sessions(postgres_url)


def _catalog_sessions(url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on a migrated database whose catalog is empty before and after the test."""
    upgrade_database(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    _empty_catalog(sessions)
    yield sessions
    _empty_catalog(sessions)
    engine.dispose()


def _empty_catalog(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as session:
        session.execute(text("DELETE FROM items"))
        session.execute(text("DELETE FROM attribute_kinds"))
