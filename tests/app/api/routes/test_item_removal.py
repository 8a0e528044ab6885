"""DELETE /v1/items/{item_id}: admin auth, 404, idempotence, restore by PUT, and a removed
item in no list (users', ad-hoc, similar, popularity fallback, with rules, exact and from
the index) while lists stay k long; on SQLite and on the real Postgres.

The tiny store's default model (mult-vae) has 60 items, ``0`` .. ``59``; every test puts
them in the catalog first (only a catalog item can be removed).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

TOKEN = "removal-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
N_ITEMS = 60


@pytest.fixture
def make_admin(
    blank_database_url: str, make_client: Callable[..., TestClient]
) -> Callable[..., TestClient]:
    """``make_admin(**settings)``: a server with the admin token on this test's database
    (SQLite or a scratch Postgres one), the 60 items in its catalog ``{"side": i % 2}``.
    The database first: its teardown (dropping a scratch database) runs after the
    clients are closed."""
    filled: list[bool] = []

    def factory(**overrides: Any) -> TestClient:
        settings = {"admin_token": TOKEN, "database_url": blank_database_url, **overrides}
        client = make_client(**settings)
        if not filled:
            for i in range(N_ITEMS):
                body = {"title": f"Item {i}", "attributes": {"side": i % 2}}
                assert client.put(f"/v1/items/{i}", json=body, headers=AUTH).status_code == 201
            filled.append(True)
        return client

    return factory


def _ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["item_id"] for item in response.json()["items"]]


def _user_list(client: TestClient, user: str, **params: Any) -> list[str]:
    return _ids(client.get(f"/v1/users/{user}/recommendations", params={"k": 10, **params}))


def _remove(client: TestClient, *ids: str) -> None:
    for item_id in ids:
        r = client.delete(f"/v1/items/{item_id}", headers=AUTH)
        assert r.status_code == 200, r.text


# --------------------------------------------------------------------------- the route


def test_delete_needs_the_admin_token(make_admin: Callable[..., TestClient]) -> None:
    client = make_admin()
    assert client.delete("/v1/items/3").status_code == 401
    wrong = client.delete("/v1/items/3", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    disabled = make_admin(admin_token=None)
    assert disabled.delete("/v1/items/3", headers=AUTH).json()["error"] == "admin_disabled"
    got = client.get("/v1/items/3")  # nothing was removed
    assert got.status_code == 200 and got.json()["removed_at"] is None


def test_an_id_not_in_the_catalog_is_a_404_and_a_bad_id_a_422(
    make_admin: Callable[..., TestClient],
) -> None:
    client = make_admin()
    r = client.delete("/v1/items/never", headers=AUTH)
    assert (r.status_code, r.json()["error"]) == (404, "unknown_item")
    assert "item 'never' is not in the catalog" in r.json()["message"]
    r = client.delete(f"/v1/items/{'x' * 300}", headers=AUTH)
    assert r.status_code == 422
    assert r.json()["message"] == "item_id is 300 characters long; the limit is 256"


def test_removal_is_idempotent_and_a_put_restores_the_item(
    make_admin: Callable[..., TestClient],
) -> None:
    client = make_admin()
    removed = client.delete("/v1/items/7", headers=AUTH)
    assert removed.status_code == 200, removed.text
    body = removed.json()
    assert body["item_id"] == "7" and body["attributes"] == {"side": 1}
    assert body["removed_at"] is not None and body["serving"] == []

    got = client.get("/v1/items/7")
    assert (got.status_code, got.json()["error"]) == (404, "unknown_item")
    assert got.json()["message"].startswith("item '7' was removed from the catalog at ")
    assert "PUT /v1/items/7 restores it" in got.json()["message"]
    assert got.json()["details"]["removed_at"] == got.json()["message"].split(" at ")[1][:32]

    again = client.delete("/v1/items/7", headers=AUTH)
    assert again.status_code == 200 and again.json()["removed_at"] == body["removed_at"]

    restored = client.put("/v1/items/7", json={"title": "Item 7"}, headers=AUTH)
    assert restored.status_code == 200, restored.text
    assert restored.json()["removed_at"] is None
    assert restored.json()["serving"] == [{"model": "mult-vae", "version": "1", "from_text": False}]
    assert client.get("/v1/items/7").json()["removed_at"] is None
    assert "7" in _user_list(client, "u1", k=N_ITEMS, exclude_seen=False)


def test_history_with_a_removed_item_is_still_taken_and_rated(
    make_admin: Callable[..., TestClient],
) -> None:
    """History is history: the interaction is logged; a rating model still rates the item
    (the caller named it); a history holding it still folds in."""
    client = make_admin()
    _remove(client, "3")
    logged = client.post("/v1/interactions", json={"user_id": "u1", "item_id": "3", "rating": 4})
    assert logged.status_code == 201, logged.text
    rated = client.post(
        "/v1/predictions", json={"user_id": "u1", "item_ids": ["3"], "model": "biased-mf"}
    )
    assert rated.status_code == 200, rated.text
    assert rated.json()["predictions"][0]["fallback"] is False
    history = {"history": [{"item_id": "3", "rating": 5}], "k": 10}
    folded = client.post("/v1/recommendations", json=history)
    assert "3" not in _ids(folded) and len(_ids(folded)) == 10
    assert not folded.json().get("unknown_items")  # a removed item is still known


# --------------------------------------------------------------------------- every list


@pytest.mark.parametrize("ann", ["off", "on"])
def test_a_removed_item_is_in_no_list_and_lists_stay_k_long(
    make_admin: Callable[..., TestClient], ann: str
) -> None:
    client = make_admin(ann=ann)
    best = _user_list(client, "u1")
    popular = _user_list(client, "stranger")  # no history: the popularity fallback
    similar = _ids(client.get("/v1/items/1/similar", params={"k": 10}))
    removed = set(best[:4]) | set(popular[:3]) | set(similar[:3])
    _remove(client, *removed)

    def check(ids: list[str], k: int = 10) -> None:
        assert not removed & set(ids) and len(ids) == k, (sorted(removed), ids)

    check(_user_list(client, "u1"))
    check(_user_list(client, "stranger"))
    check(_user_list(client, "u1", filter="side:1"))  # a business rule: 30 odd items
    check(_user_list(client, "u1", boost="side:0^2"))
    check(_user_list(client, "u1", cap="side:5"))  # diversity re-ranks the rest
    check(_ids(client.get("/v1/items/1/similar", params={"k": 10})))
    check(_ids(client.get("/v1/items/1/similar", params={"k": 10, "filter": "side:0"})))
    history = [{"item_id": i, "rating": 5} for i in best[:4]]  # removed ones fold in
    check(_ids(client.post("/v1/recommendations", json={"history": history, "k": 10})))
    rules = {"filter": {"op": "eq", "attr": "side", "value": 1}}
    check(_ids(client.post("/v1/recommendations", json={"history": [], "k": 10, "rules": rules})))
    # A removed item's own similar list still answers (alternatives to a discontinued
    # product), without removed items.
    gone = next(iter(removed))
    check(_ids(client.get(f"/v1/items/{gone}/similar", params={"k": 10})))
    # The whole catalog: everything but the removed items, k or not.
    everything = _ids(
        client.get("/v1/users/u1/recommendations", params={"k": N_ITEMS, "exclude_seen": False})
    )
    assert set(everything) == {str(i) for i in range(N_ITEMS)} - removed
    metrics = client.get("/metrics").text
    assert ('genrec_ann_rows_total{model="mult-vae"}' in metrics) is (ann == "on")


@pytest.mark.parametrize("ann", ["off", "on"])
def test_an_include_list_naming_a_removed_item_leaves_it_out(
    make_admin: Callable[..., TestClient], ann: str
) -> None:
    """A removed item named in ``include`` stays out, and the list says ``short_by``
    (README "Removing an item"): un-masking the included ids after the removed row was
    ORed in put a taken-down item back into any list that asked for it by name."""
    client = make_admin(ann=ann)
    _remove(client, "3", "7")
    include = ["3", "5", "7", "9"]
    users = client.get(
        "/v1/users/u1/recommendations",
        params={"k": 4, "include": include, "exclude_seen": False},
    )
    body = {"history": [], "k": 4, "include": include}
    ad_hoc = client.post("/v1/recommendations", json=body)
    for response in (users, ad_hoc):
        assert sorted(_ids(response)) == ["5", "9"]
        assert response.json()["short_by"] == 2


def test_experiment_variants_leave_removed_items_out(
    make_admin: Callable[..., TestClient],
) -> None:
    client = make_admin()
    experiment = {
        "name": "removal",
        "variants": [
            {"name": "control", "model": "popularity", "weight": 1},
            {"name": "ease", "model": "ease", "version": "1", "weight": 1},
        ],
    }
    created = client.post("/admin/experiments", json=experiment, headers=AUTH)
    assert created.status_code == 201, created.text
    users = [f"u{n}" for n in range(20)]
    before = {
        u: client.get(f"/v1/users/{u}/recommendations", params={"k": 10}).json() for u in users
    }
    variants = {u: body["variant"] for u, body in before.items()}
    assert set(variants.values()) == {"control", "ease"}
    removed = {i["item_id"] for body in before.values() for i in body["items"][:2]}
    _remove(client, *removed)
    for user in users:
        after = client.get(f"/v1/users/{user}/recommendations", params={"k": 10}).json()
        assert after["variant"] == variants[user]
        ids = [i["item_id"] for i in after["items"]]
        assert not removed & set(ids) and len(ids) == 10, (user, sorted(removed), ids)


def test_another_replica_drops_the_item_at_its_reload_poll(
    make_admin: Callable[..., TestClient],
) -> None:
    writer, reader = make_admin(), make_admin()
    best = _user_list(reader, "u1")[0]
    _remove(writer, best)
    deadline = time.monotonic() + 10
    while best in _user_list(reader, "u1") and time.monotonic() < deadline:
        time.sleep(0.05)
    listed = _user_list(reader, "u1")
    assert best not in listed and len(listed) == 10
    assert writer.put(f"/v1/items/{best}", json={}, headers=AUTH).status_code == 200
    while best not in _user_list(reader, "u1") and time.monotonic() < deadline + 10:
        time.sleep(0.05)
    assert _user_list(reader, "u1")[0] == best  # restored: ranked where it was


# --------------------------------------------------------------------------- a failed sync


def test_a_removal_or_restore_this_server_could_not_apply_says_so(
    make_admin: Callable[..., TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The answering server reads the catalog's change after the commit, so that it stops
    (or starts again) serving the item before answering. That read logs and swallows its
    failures, and the answer was the same 200 as a complete one: a DELETE said ``serving``
    empty while this server still listed the item. The change is committed, so it stays a
    200, with ``refresh_pending`` true and ``serving`` saying what this server serves."""
    from sqlalchemy.exc import OperationalError

    import app.catalog.sync as sync_module

    client = make_admin()
    best = _user_list(client, "u1")[0]

    def down(*args: object, **kwargs: object) -> None:
        raise OperationalError("SELECT 1", {}, Exception("connection lost"))

    real = sync_module.items_changed_since
    monkeypatch.setattr(sync_module, "items_changed_since", down)
    r = client.delete(f"/v1/items/{best}", headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json()["refresh_pending"] is True and r.json()["removed_at"] is not None
    assert r.json()["serving"] == [{"model": "mult-vae", "version": "1", "from_text": False}]
    assert best in _user_list(client, "u1")  # not read here: still listed, as said
    assert client.get(f"/v1/items/{best}").status_code == 404  # the committed part
    monkeypatch.setattr(sync_module, "items_changed_since", real)
    client.app.state.catalog.sync_now()  # type: ignore[attr-defined]  # the next poll
    assert best not in _user_list(client, "u1")

    monkeypatch.setattr(sync_module, "items_changed_since", down)
    r = client.put(f"/v1/items/{best}", json={"title": f"Item {best}"}, headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json()["refresh_pending"] is True and r.json()["removed_at"] is None
    assert r.json()["serving"] == []  # this server still has it removed
    assert best not in _user_list(client, "u1")
    monkeypatch.setattr(sync_module, "items_changed_since", real)
    client.app.state.catalog.sync_now()  # type: ignore[attr-defined]
    assert _user_list(client, "u1")[0] == best

    assert client.delete(f"/v1/items/{best}", headers=AUTH).json()["refresh_pending"] is False
    put = client.put(f"/v1/items/{best}", json={}, headers=AUTH)
    assert put.json()["refresh_pending"] is False and put.json()["serving"]
