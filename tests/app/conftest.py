"""Fixtures for the service tests: a migrated SQLite log, a tiny trained store, app clients."""

# ruff: noqa: E402  (imports follow the sys.path fix below)

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

# pytest's default "prepend" import mode puts tests/ on sys.path, where this
# folder (tests/app, no __init__.py) would be found as a namespace package
# named ``app`` before the editable install's finder is asked. A regular
# package on sys.path wins over a namespace portion, so put the repo root there.
# (Project-level fix: ``pythonpath = ["."]`` in [tool.pytest.ini_options].)
_REPO_ROOT = str(Path(__file__).resolve().parents[2])
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

import shutil
from collections.abc import Callable

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.core.config import Settings
from app.core.db import make_engine, make_sessionmaker, upgrade_database
from app.main import create_app
from app.retrain.runner import JobContext
from models_store import ModelStore
from tests.conftest import POSTGRES_ADMIN_URL, scratch_database
from training.data.interactions import Interactions


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A migrated, empty SQLite interaction log in the test's tmp dir."""
    url = f"sqlite:///{tmp_path}/genrec.db"
    upgrade_database(url)
    return url


@pytest.fixture(params=["sqlite", "postgres"])
def blank_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty, unmigrated database on each backend: a SQLite file, and a scratch
    database of its own on the real Postgres (a migration test upgrades from an earlier
    revision, so it cannot share the session's database)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/log.db"
        return
    request.getfixturevalue("postgres_url")  # skips (or fails under CI) without Postgres
    with scratch_database(POSTGRES_ADMIN_URL, "genrec_blank") as scratch:
        yield scratch


@pytest.fixture
def engine(sqlite_url: str) -> Iterator[Engine]:
    engine = make_engine(sqlite_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_sessionmaker(engine)


# --------------------------------------------------------------------------- artifacts

#: Tiny settings per model: enough to produce a real artifact in well under a second.
TINY_MODELS: dict[str, dict[str, object]] = {
    "popularity": {},
    "biased-mf": {"epochs": 2, "factors": 8},
    "ease": {},
    "mult-vae": {"epochs": 2, "hidden_dim": 16, "latent_dim": 8},
}
#: Trained only by tests that need a model the default store lacks.
EXTRA_TINY_MODELS: dict[str, dict[str, object]] = {
    "mult-dae": {"epochs": 2, "hidden_dim": 16},
}
N_USERS, N_ITEMS = 40, 60


def tiny_interactions(seed: int = 0) -> Interactions:
    """Synthetic explicit ratings: users ``u0..``, items ``0..``, titles ``Item i``.

    Two taste groups (even/odd items) give the models something to learn.
    """
    rng = np.random.default_rng(seed)
    users, items = [], []
    for u in range(N_USERS):
        pool = np.arange(u % 2, N_ITEMS, 2)
        chosen = rng.choice(pool, size=12, replace=False)
        users += [f"u{u}"] * len(chosen)
        items += [str(i) for i in chosen]
    n = len(users)
    return Interactions.from_arrays(
        users,
        items,
        rng.integers(1, 6, n).astype(np.float32),
        1_600_000_000 + np.arange(n),
        item_meta={str(i): {"title": f"Item {i}"} for i in range(N_ITEMS)},
    )


def train_into(store: ModelStore, name: str, seed: int = 0, promote: bool = True) -> str:
    """Train ``name`` tiny on synthetic data into ``store``; returns the new version."""
    from training.pipeline import train_and_save

    overrides = {**{**TINY_MODELS, **EXTRA_TINY_MODELS}[name], "seed": seed}
    manifest = train_and_save(
        store, name, tiny_interactions(), overrides, source="synthetic", promote=promote
    )
    return manifest.version


@pytest.fixture(scope="session")
def trained_store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with one promoted tiny version of each model in ``TINY_MODELS`` (read-only)."""
    import torch

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("store")
    store = ModelStore(root)
    for name in TINY_MODELS:
        train_into(store, name)
    train_into(store, "mult-dae", promote=False)  # stored, never promoted
    return root


@pytest.fixture
def store_dir(trained_store_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the trained store that a test may promote, corrupt or extend."""
    target = tmp_path / "store"
    shutil.copytree(trained_store_dir, target)
    return target


def embedded_settings(**overrides: object) -> Settings:
    """Embedded mode (SQLite + in-process cache), no .env, fast reload polling."""
    values: dict[str, object] = {
        "redis_url": None,
        "reload_interval_s": 0.05,
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


ClientFactory = Callable[..., TestClient]


@pytest.fixture
def make_client(store_dir: Path, tmp_path: Path) -> Iterator[ClientFactory]:
    """``make_client(**settings)`` -> a started TestClient; all are closed after the test."""
    clients: list[TestClient] = []

    def factory(**overrides: object) -> TestClient:
        overrides.setdefault("database_url", f"sqlite:///{tmp_path}/app-{len(clients)}.db")
        overrides.setdefault("store_dir", store_dir)
        settings = embedded_settings(**overrides)  # type: ignore[arg-type]
        client = TestClient(create_app(settings), raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.__exit__(None, None, None)


JobContextFactory = Callable[..., JobContext]


@pytest.fixture
def make_job_context(tmp_path: Path) -> Iterator[JobContextFactory]:
    """``make_job_context(database_url, sessions=None, **settings)`` -> a worker's context
    on the CPU over that database and the store at ``tmp_path / "store"`` (the retrain and
    tune job tests); the engines it made for want of ``sessions`` are disposed after."""
    engines: list[Engine] = []

    def factory(
        database_url: str, sessions: sessionmaker[Session] | None = None, **overrides: object
    ) -> JobContext:
        settings = embedded_settings(
            database_url=database_url, store_dir=tmp_path / "store", **overrides
        )
        if sessions is None:
            engines.append(make_engine(database_url))
            sessions = make_sessionmaker(engines[-1])
        return JobContext(settings, ModelStore(tmp_path / "store"), sessions, torch.device("cpu"))

    yield factory
    for engine in engines:
        engine.dispose()


@pytest.fixture
def client(make_client: ClientFactory) -> TestClient:
    """The default embedded app over the trained store (default model: mult-vae)."""
    return make_client()


@pytest.fixture(scope="session")
def seen_items() -> Callable[[str], set[str]]:
    """``seen_items(user_id)`` -> the item ids the user has in the tiny training data."""
    data = tiny_interactions()
    by_user: dict[str, set[str]] = {}
    for u, i in zip(data.users, data.items, strict=True):
        by_user.setdefault(data.user_ids.external(int(u)), set()).add(
            data.item_ids.external(int(i))
        )
    return lambda user_id: by_user.get(user_id, set())


@pytest.fixture
def train() -> Callable[..., str]:
    """``train(store, name, seed=0, promote=True)`` -> version (tiny synthetic training)."""
    return train_into
