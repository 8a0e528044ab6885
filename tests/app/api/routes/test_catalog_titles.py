"""Lists show the catalog's current title of an item (``app.serving.titles``): a rename by
``PUT /v1/items/{id}`` shows in users' lists and similar lists at once on this server
and at its next poll on another; an item the catalog holds without a title, a removed
item and an item not in the catalog keep the model's title ("Item i" in the tiny store).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

TOKEN = "titles-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def admin(make_client: Callable[..., TestClient], tmp_path: Path) -> TestClient:
    return make_client(admin_token=TOKEN, database_url=f"sqlite:///{tmp_path}/titles.db")


def _put(client: TestClient, item_id: str, **body: Any) -> None:
    r = client.put(f"/v1/items/{item_id}", json=body, headers=AUTH)
    assert r.status_code in (200, 201), r.text


def _titles(client: TestClient) -> dict[str, str | None]:
    """Every item's title in u1's full list (seen items too)."""
    r = client.get("/v1/users/u1/recommendations", params={"k": 60, "exclude_seen": False})
    assert r.status_code == 200, r.text
    return {it["item_id"]: it["title"] for it in r.json()["items"]}


def _similar(client: TestClient, item_id: str) -> dict[str, Any]:
    r = client.get(f"/v1/items/{item_id}/similar", params={"k": 59})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_a_renamed_item_shows_its_catalog_title_in_every_list(admin: TestClient) -> None:
    _put(admin, "5", title="Renamed five")
    _put(admin, "6", attributes={"side": 0})  # in the catalog without a title
    titles = _titles(admin)
    assert titles["5"] == "Renamed five"
    assert titles["6"] == "Item 6" and titles["7"] == "Item 7"  # no catalog title / no row
    assert _similar(admin, "5")["title"] == "Renamed five"
    assert {it["item_id"]: it["title"] for it in _similar(admin, "4")["items"]}["5"] == (
        "Renamed five"
    )

    _put(admin, "5", title="Renamed again")
    assert _titles(admin)["5"] == "Renamed again"
    _put(admin, "5")  # a PUT replaces the title: none in the catalog now
    assert _titles(admin)["5"] == "Item 5"


def test_a_removed_item_keeps_the_models_title(admin: TestClient) -> None:
    _put(admin, "5", title="Renamed five")
    assert admin.delete("/v1/items/5", headers=AUTH).status_code == 200
    assert _similar(admin, "5")["title"] == "Item 5"
    _put(admin, "5", title="Back again")  # a PUT restores it, with its new title
    assert _titles(admin)["5"] == "Back again"


def test_another_server_shows_the_rename_after_its_poll(
    make_client: Callable[..., TestClient], tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path}/shared.db"
    writer = make_client(admin_token=TOKEN, database_url=url, reload_interval_s=3600)
    replica = make_client(admin_token=TOKEN, database_url=url, reload_interval_s=3600)
    _put(writer, "9", title="Nine, renamed")
    assert _titles(replica)["9"] == "Item 9"  # not polled yet
    replica.app.state.catalog.sync_now()  # type: ignore[attr-defined]
    assert _titles(replica)["9"] == "Nine, renamed"
