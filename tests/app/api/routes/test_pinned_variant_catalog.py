"""An experiment whose variant pins a text-aware version, and catalog writes during it.

Production convmf 1 against convmf 2, pinned by the variant. An item put after the pin
used to reach production only: the pinned arm could not recommend it while the other
arm could, and the ``PUT`` answered ``refresh_pending: false`` all the same. Removals and
catalog titles are shared per server and must reach the pinned arm too.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient

from models_store import ModelStore
from tests.app.catalog_data import TINY_CONVMF, TextRatings, text_ratings
from training.pipeline import train_and_save

TOKEN = "pinned-catalog-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
EXPERIMENT = {
    "name": "convmf-versions",
    "variants": [
        {"name": "control", "model": "convmf", "weight": 1},
        {"name": "pinned", "model": "convmf", "version": "2", "weight": 1},
    ],
}


@pytest.fixture(scope="module")
def data() -> TextRatings:
    return text_ratings(seed=0)


@pytest.fixture(scope="module")
def two_convmf_store(data: TextRatings, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """convmf 1 in production, convmf 2 stored but not promoted (only the variant serves it)."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("two-convmf-store")
    store = ModelStore(root)
    train_and_save(store, "convmf", data.train, dict(TINY_CONVMF), source="text", promote=True)
    tiny = {**TINY_CONVMF, "epochs": 1, "cnn_epochs": 1}
    assert train_and_save(store, "convmf", data.train, tiny, source="text").version == "2"
    return root


def _recs(client: TestClient, user: str) -> dict[str, Any]:
    response = client.get(f"/v1/users/{user}/recommendations", params={"k": 50})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_an_item_put_during_an_experiment_reaches_the_pinned_variant(
    make_client: Callable[..., TestClient], two_convmf_store: Path, data: TextRatings
) -> None:
    client = make_client(admin_token=TOKEN, store_dir=two_convmf_store, default_model="convmf")
    created = client.post("/admin/experiments", json=EXPERIMENT, headers=AUTH)
    assert created.status_code == 201, created.text
    answers = {user: _recs(client, user) for user in (f"u{n:02d}" for n in range(20))}
    pinned_users = [u for u, a in answers.items() if a["variant"] == "pinned"]
    control_users = [u for u, a in answers.items() if a["variant"] == "control"]
    assert pinned_users and control_users  # the pin is loaded: the item comes after it
    assert {answers[u]["version"] for u in pinned_users} == {"2"}

    item_id, (_, text) = next(iter(data.held_out.items()))
    put = client.put(f"/v1/items/{item_id}", json={"title": "Comet", "text": text}, headers=AUTH)
    assert put.status_code == 201 and put.json()["refresh_pending"] is False, put.text
    for user in pinned_users + control_users:
        listed = {it["item_id"]: it for it in _recs(client, user)["items"]}
        assert item_id in listed, user  # k covers every item the user has not rated
        assert (listed[item_id]["title"], listed[item_id]["from_text"]) == ("Comet", True)

    removed = client.delete(f"/v1/items/{item_id}", headers=AUTH)
    assert removed.status_code == 200 and removed.json()["refresh_pending"] is False
    for user in pinned_users + control_users:
        answer = _recs(client, user)
        assert answer["items"] and item_id not in {it["item_id"] for it in answer["items"]}
