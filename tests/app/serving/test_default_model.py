"""The default model: chosen from the store unless GENREC_DEFAULT_MODEL is set (issue #16, item 7).

Each branch of the rule (mult-vae if promoted, else the only production model,
else the newest promotion) and the strict explicit setting, against the real
Postgres; polling is driven by the test.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from models_store import ModelStore

pytestmark = pytest.mark.integration

#: /readyz says why the server is not ready only to the admin token.
AUTH = {"Authorization": "Bearer t"}


def _recommend(client: TestClient, **params: object) -> tuple[int, dict[str, object]]:
    r = client.get("/v1/users/u1/recommendations", params={"k": 3, **params})
    return r.status_code, r.json()


@pytest.fixture
def empty_store(tmp_path: Path) -> Path:
    return tmp_path / "own-store"


@pytest.fixture
def start(
    make_client: Callable[..., TestClient], postgres_url: str, empty_store: Path
) -> Callable[..., TestClient]:
    """Start an app on ``empty_store`` and the real Postgres; polling only when the test says."""

    def factory(**settings: object) -> TestClient:
        return make_client(
            database_url=postgres_url,
            store_dir=empty_store,
            reload_interval_s=3600,
            admin_token="t",
            **settings,
        )

    return factory


def test_unset_default_is_mult_vae_when_it_is_promoted(
    make_client: Callable[..., TestClient], postgres_url: str
) -> None:
    client = make_client(database_url=postgres_url)  # the trained store has several models
    ready = client.get("/readyz").json()
    assert ready["ready"] is True and ready["default_model"] == "mult-vae"
    assert _recommend(client)[1]["model"] == "mult-vae"


def test_unset_default_is_the_only_production_model(
    start: Callable[..., TestClient], empty_store: Path, train: Callable[..., str]
) -> None:
    store = ModelStore(empty_store)
    train(store, "ease")
    train(store, "mult-dae", promote=False)  # stored, no production version: not a candidate
    client = start()
    r = client.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json()["default_model"] == "ease" and r.json()["reason"] is None
    status, body = _recommend(client)
    assert status == 200 and body["model"] == "ease"


def test_unset_default_is_the_newest_promotion_and_follows_the_store(
    start: Callable[..., TestClient], empty_store: Path, train: Callable[..., str]
) -> None:
    store = ModelStore(empty_store)
    train(store, "ease")
    train(store, "popularity")  # promoted after ease
    client = start()
    holder = client.app.state.services.holder  # type: ignore[attr-defined]
    assert client.get("/readyz").json()["default_model"] == "popularity"
    assert _recommend(client)[1]["model"] == "popularity"
    store.promote("ease", "1")  # promoted again: now the newest
    holder.poll_once()
    assert client.get("/readyz").json()["default_model"] == "ease"
    assert _recommend(client)[1]["model"] == "ease"
    train(store, "mult-vae")  # mult-vae gets a production version: it wins
    holder.poll_once()
    assert client.get("/readyz").json()["default_model"] == "mult-vae"
    assert _recommend(client)[1]["model"] == "mult-vae"


def test_unset_default_with_nothing_promoted_says_so(
    start: Callable[..., TestClient], empty_store: Path, train: Callable[..., str]
) -> None:
    train(ModelStore(empty_store), "ease", promote=False)
    client = start()
    r = client.get("/readyz", headers=AUTH)
    assert r.status_code == 503
    assert "no model in the store has a production version" in r.json()["reason"]
    assert "ease" in r.json()["reason"]
    status, body = _recommend(client)
    assert status == 404
    assert "default model 'mult-vae' (automatic: GENREC_DEFAULT_MODEL is not set)" in str(
        body["message"]
    )


def test_explicit_default_stays_strict_and_errors_name_it(
    start: Callable[..., TestClient], empty_store: Path, train: Callable[..., str]
) -> None:
    train(ModelStore(empty_store), "ease")
    client = start(default_model="mult-vae")  # as if GENREC_DEFAULT_MODEL=mult-vae
    r = client.get("/readyz", headers=AUTH)
    assert r.status_code == 503
    reason = r.json()["reason"]
    assert "'mult-vae' (GENREC_DEFAULT_MODEL) is not in the store" in reason
    assert "ease" in reason
    status, body = _recommend(client)
    assert status == 404
    assert "default model 'mult-vae' (GENREC_DEFAULT_MODEL)" in str(body["message"])
    status, body = _recommend(client, model="ease")  # naming a model still works
    assert status == 200 and body["model"] == "ease"
