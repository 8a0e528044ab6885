"""A refused version is tried again once it is repaired or promoted again (issue #16, item 3).

Runs the app against the real Postgres; the holder's polling is driven by the
test (``poll_once``) so nothing depends on the wall clock.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from models_store import ModelStore

pytestmark = pytest.mark.integration

TOKEN = "retry-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _version(client: TestClient) -> str:
    return str(client.get("/v1/users/u1/recommendations", params={"k": 3}).json()["version"])


def _refusal(client: TestClient) -> str | None:
    error = client.get("/readyz", headers=AUTH).json()["models"]["mult-vae"]["error"]
    return None if error is None else str(error)


def _serving_1_with_2_refused(
    make_client: Callable[..., TestClient],
    store_dir: Path,
    train: Callable[..., str],
    postgres_url: str,
) -> tuple[TestClient, Path, bytes]:
    """A running server on version 1 that refused the promoted version 2 (corrupt tensors)."""
    client = make_client(database_url=postgres_url, admin_token=TOKEN, reload_interval_s=3600)
    assert _version(client) == "1"
    assert train(ModelStore(store_dir), "mult-vae", seed=1) == "2"  # promoted
    tensors = store_dir / "mult-vae" / "versions" / "2" / "tensors.safetensors"
    good = tensors.read_bytes()
    broken = bytearray(good)
    broken[-1] ^= 0xFF
    tensors.write_bytes(bytes(broken))
    client.app.state.services.holder.poll_once()  # type: ignore[attr-defined]
    assert _version(client) == "1"
    assert "version 2 refused" in (_refusal(client) or "")
    return client, tensors, good


def test_repaired_version_promoted_again_is_loaded_without_restart(
    make_client: Callable[..., TestClient],
    store_dir: Path,
    train: Callable[..., str],
    postgres_url: str,
) -> None:
    client, tensors, good = _serving_1_with_2_refused(make_client, store_dir, train, postgres_url)
    holder = client.app.state.services.holder  # type: ignore[attr-defined]
    r = client.post("/admin/models/mult-vae/promote", json={"version": "2"}, headers=AUTH)
    assert r.status_code == 409, r.text  # still corrupt: refused by the store too
    # Repair the file but keep its size and mtime, so only the re-promotion can tell.
    before = os.stat(tensors)
    tensors.write_bytes(good)
    os.utime(tensors, ns=(before.st_atime_ns, before.st_mtime_ns))
    holder.poll_once()
    assert _version(client) == "1"  # nothing the poller can see has changed yet
    r = client.post("/admin/models/mult-vae/promote", json={"version": "2"}, headers=AUTH)
    assert r.status_code == 200, r.text
    assert (r.json()["version"], r.json()["previous"]) == ("2", "2")
    holder.poll_once()
    assert _version(client) == "2"
    assert _refusal(client) is None  # /readyz drops the old refusal


def test_repaired_files_are_loaded_without_a_new_promotion(
    make_client: Callable[..., TestClient],
    store_dir: Path,
    train: Callable[..., str],
    postgres_url: str,
) -> None:
    client, tensors, good = _serving_1_with_2_refused(make_client, store_dir, train, postgres_url)
    holder = client.app.state.services.holder  # type: ignore[attr-defined]
    errors = 'genrec_model_load_errors_total{model="mult-vae"} 1.0'
    holder.poll_once()  # unchanged: the refusal stands and the version is not re-read
    assert errors in client.get("/metrics").text
    tensors.write_bytes(good)  # restored from a backup: new mtime
    holder.poll_once()
    assert _version(client) == "2"
    assert _refusal(client) is None
    assert errors in client.get("/metrics").text  # loaded, not refused again


def test_promoting_the_current_version_again_keeps_the_rollback_history(
    tmp_path: Path, train: Callable[..., str]
) -> None:
    store = ModelStore(tmp_path)
    train(store, "popularity")
    train(store, "popularity", seed=1)
    before = store.alias_marker("popularity")
    store.promote("popularity", "2")
    after = store.alias_marker("popularity")
    assert before is not None and after is not None
    assert after[0] == "2" and after[1] >= before[1]
    assert store.rollback("popularity") == "1"
