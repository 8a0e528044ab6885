"""A version deleted from the store (``ModelStore.delete_version``, ``genrec models
delete``) leaves the running server and ``GET /admin/models`` as they were for the
other versions."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient

from models_store import ModelStore
from tests.app.conftest import ClientFactory

TOKEN = "deleted-version-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_deleting_a_version_leaves_the_listing_and_serving_of_the_others(
    make_client: ClientFactory, store_dir: Path, train: Callable[..., str]
) -> None:
    store = ModelStore(store_dir)
    second = train(store, "mult-vae", seed=1, promote=False)
    third = train(store, "mult-vae", seed=2, promote=False)
    store.promote("mult-vae", second)
    admin: TestClient = make_client(admin_token=TOKEN)

    assert store.delete_version("mult-vae", "1") == ["production"]
    assert store.delete_version("mult-vae", third) == []

    listing = admin.get("/admin/models", headers=AUTH)
    assert listing.status_code == 200, listing.text
    models = {m["name"]: m for m in listing.json()["models"]}
    vae = models["mult-vae"]
    assert [v["version"] for v in vae["versions"]] == [second]
    assert vae["aliases"] == {"production": second} and vae["unreadable"] == {}
    assert models["ease"]["aliases"] == {"production": "1"}  # other models untouched
    served = admin.get("/v1/users/u1/recommendations?k=3&model=mult-vae")
    assert served.status_code == 200 and str(served.json()["version"]) == second
    # The deleted version is no rollback target; the next save gets a fresh number.
    back = admin.post("/admin/models/mult-vae/rollback", headers=AUTH)
    assert back.status_code == 409, back.text
    assert train(store, "mult-vae", seed=3, promote=False) == str(int(third) + 1)
