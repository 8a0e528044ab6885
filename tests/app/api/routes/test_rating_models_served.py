"""Every rating model in the registry is served: predictions, top-k and fold-in over HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from models_store import ModelStore
from tests.app.conftest import tiny_interactions
from training.models import REGISTRY
from training.pipeline import train_and_save

#: Just enough training for a real artifact of each rating model.
TINY_RATING: dict[str, dict[str, object]] = {
    "biased-mf": {"epochs": 2, "factors": 8},
    "i-autorec": {"epochs": 2, "hidden": 16},
    "u-autorec": {"epochs": 30, "hidden": 16, "lr": 0.01},
    "cf-nade": {"epochs": 2, "hidden": 16},
    "i-cf-nade": {"epochs": 2, "hidden": 16},
    "cf-rbm": {"epochs": 2, "hidden": 16},
    "pmf": {"epochs": 2, "factors": 8},
}
RATING_MODELS = sorted(name for name, cls in REGISTRY.items() if cls.task == "ratings")


def test_every_rating_model_of_the_registry_is_covered_here() -> None:
    # convmf needs item documents; its serving is tested in test_catalog_routes.
    assert set(RATING_MODELS) - {"convmf"} == set(TINY_RATING)


@pytest.fixture(scope="module")
def rating_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("rating-store")
    store = ModelStore(root)
    for name, settings in TINY_RATING.items():
        train_and_save(store, name, tiny_interactions(), dict(settings), source="t", promote=True)
    return root


@pytest.fixture
def rating_client(make_client, rating_store: Path) -> TestClient:  # type: ignore[no-untyped-def]
    return make_client(store_dir=rating_store, default_model="biased-mf")


@pytest.mark.parametrize("name", sorted(TINY_RATING))
def test_rating_model_predicts_recommends_and_folds_in(
    rating_client: TestClient, name: str
) -> None:
    predicted = rating_client.post(
        "/v1/predictions", json={"user_id": "u2", "item_ids": ["7", "3"], "model": name}
    )
    assert predicted.status_code == 200, predicted.text
    assert (predicted.json()["model"], predicted.json()["version"]) == (name, "1")
    assert all(1.0 <= p["rating"] <= 5.0 for p in predicted.json()["predictions"])

    recs = rating_client.get("/v1/users/u2/recommendations", params={"k": 5, "model": name})
    assert recs.status_code == 200, recs.text
    assert len(recs.json()["items"]) == 5 and recs.json()["fallback"] is False

    # A user the artifact never saw is folded in from the logged ratings.
    new_user = f"new-{name}"
    body = {"model": name, "item_ids": ["7", "3", "11"]}
    unknown = rating_client.post("/v1/predictions", json={"user_id": new_user, **body})
    assert unknown.status_code == 200, unknown.text  # nothing logged yet: the baseline
    assert all(p["fallback"] for p in unknown.json()["predictions"])
    logged = [{"user_id": new_user, "item_id": i, "rating": 5} for i in ("1", "5", "9")]
    assert rating_client.post("/v1/interactions", json={"interactions": logged}).status_code == 201
    first = rating_client.post("/v1/predictions", json={"user_id": new_user, **body}).json()
    more = [{"user_id": new_user, "item_id": i, "rating": 1} for i in ("7", "13", "15")]
    assert rating_client.post("/v1/interactions", json={"interactions": more}).status_code == 201
    second = rating_client.post("/v1/predictions", json={"user_id": new_user, **body}).json()
    assert not any(p["fallback"] for p in first["predictions"] + second["predictions"])
    assert [p["rating"] for p in first["predictions"]] != [
        p["rating"] for p in second["predictions"]
    ], "fold-in ignored the user's new ratings"
    recs = rating_client.get(f"/v1/users/{new_user}/recommendations", params={"model": name})
    assert recs.status_code == 200 and recs.json()["fallback"] is False
    seen = {"1", "5", "9", "7", "13", "15"}
    assert not seen & {it["item_id"] for it in recs.json()["items"]}
