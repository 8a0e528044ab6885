"""``create_app``'s lifespan: what it starts on startup it stops on shutdown."""

from __future__ import annotations

import threading
from pathlib import Path

from fastapi.testclient import TestClient

from app.catalog import CatalogSync
from app.main import create_app
from tests.app.conftest import embedded_settings


def _threads(name: str) -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == name and t.is_alive()}


def test_the_lifespan_starts_and_stops_the_catalog_sync_and_the_reload_thread(
    store_dir: Path, tmp_path: Path
) -> None:
    before = {name: _threads(name) for name in ("catalog-sync", "model-reload")}
    settings = embedded_settings(database_url=f"sqlite:///{tmp_path}/app.db", store_dir=store_dir)
    with TestClient(create_app(settings)) as client:
        assert isinstance(client.app.state.catalog, CatalogSync)  # type: ignore[attr-defined]
        started = {name: _threads(name) - before[name] for name in before}
        assert {name: len(threads) for name, threads in started.items()} == {
            "catalog-sync": 1,
            "model-reload": 1,
        }
    for threads in started.values():
        assert not any(t.is_alive() for t in threads)
