"""A small BPR-MF trained once per session on all of MovieLens-100K, and its catalog.

One epoch of 16 dimensions (seconds): the tests need real item ids, real genres
and real item vectors, not a good model.
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient

from app.catalog.items import import_records
from models_store import ModelStore
from training.data.catalog_file import CatalogRecord, read_catalog_file
from training.data.interactions import Interactions
from training.data.movielens import read_ml100k
from training.pipeline import train_and_save

ADMIN_TOKEN = "rules-admin-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture(scope="session")
def ml100k(data_dir: Path) -> Interactions:
    return read_ml100k(data_dir / "ml-100k")


@pytest.fixture(scope="session")
def ml100k_catalog(data_dir: Path) -> list[CatalogRecord]:
    return read_catalog_file(data_dir / "ml-100k" / "u.item")


@pytest.fixture(scope="session")
def ml100k_store_dir(ml100k: Interactions, tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("ml100k-store")
    settings = {"epochs": 1, "dim": 16, "seed": 0}
    train_and_save(ModelStore(root), "bpr-mf", ml100k, settings, source="ml-100k", promote=True)
    return root


@pytest.fixture
def ml100k_client_factory(
    make_client: Callable[..., TestClient],
    ml100k_store_dir: Path,
    ml100k_catalog: list[CatalogRecord],
    tmp_path: Path,
) -> Callable[..., TestClient]:
    """Embedded apps serving the ML-100K model, its catalog imported from u.item; each
    call gets its own copy of the store and database, ``settings`` on top."""
    made = itertools.count()

    def build(**settings: Any) -> TestClient:
        n = next(made)
        store = tmp_path / f"ml100k-store-{n}"
        shutil.copytree(ml100k_store_dir, store)
        database_url = f"sqlite:///{tmp_path}/rules-{n}.db"
        import_records(database_url, ml100k_catalog, "u.item")
        return make_client(
            database_url=database_url,
            store_dir=store,
            default_model="bpr-mf",
            admin_token=ADMIN_TOKEN,
            **settings,
        )

    return build


@pytest.fixture
def ml100k_client(ml100k_client_factory: Callable[..., TestClient]) -> TestClient:
    """The embedded app serving the ML-100K model, its catalog imported from u.item."""
    return ml100k_client_factory()


@pytest.fixture(scope="session")
def genres_of(ml100k_catalog: list[CatalogRecord]) -> dict[str, set[str]]:
    return {r.item_id: set(r.attributes["genres"]) for r in ml100k_catalog}


@pytest.fixture(scope="session")
def seen_by(ml100k: Interactions) -> Callable[[str], set[str]]:
    by_user: dict[str, set[str]] = {}
    for u, i in zip(ml100k.users, ml100k.items, strict=True):
        by_user.setdefault(ml100k.user_ids.external(int(u)), set()).add(
            ml100k.item_ids.external(int(i))
        )
    return lambda user: by_user.get(user, set())
