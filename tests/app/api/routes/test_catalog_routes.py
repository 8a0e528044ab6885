"""PUT / GET /v1/items/{item_id}: admin auth, validation, and new items served from text."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

from models_store import ModelStore
from tests.app.catalog_data import TINY_CONVMF, TextRatings, text_ratings
from training.pipeline import train_and_save

TOKEN = "catalog-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def data() -> TextRatings:
    return text_ratings(seed=0)


@pytest.fixture(scope="module")
def convmf_store(data: TextRatings, tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("convmf-store")
    train_and_save(
        ModelStore(root), "convmf", data.train, dict(TINY_CONVMF), source="text", promote=True
    )
    return root


@pytest.fixture
def admin_client(make_client) -> TestClient:  # type: ignore[no-untyped-def]
    return make_client(admin_token=TOKEN)


# --------------------------------------------------------------------------- API rules


def test_put_needs_the_admin_token(make_client) -> None:  # type: ignore[no-untyped-def]
    disabled = make_client()
    assert disabled.put("/v1/items/x", json={"title": "X"}).status_code == 403
    client = make_client(admin_token=TOKEN)
    assert client.put("/v1/items/x", json={}).status_code == 401
    wrong = client.put("/v1/items/x", json={}, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert client.get("/v1/items/x").status_code == 404  # nothing was written


def test_put_creates_then_replaces_and_get_reads_it(admin_client: TestClient) -> None:
    body = {"title": "Moonraker", "text": "a spy in space", "attributes": {"year": 1979}}
    created = admin_client.put("/v1/items/new-1", json=body, headers=AUTH)
    assert created.status_code == 201, created.json()
    assert {k: created.json()[k] for k in body} == body
    replaced = admin_client.put("/v1/items/new-1", json={"title": "Moonraker"}, headers=AUTH)
    assert replaced.status_code == 200
    got = admin_client.get("/v1/items/new-1").json()
    # PUT replaces the whole entry: omitted text and attributes are gone.
    assert (got["title"], got["text"], got["attributes"]) == ("Moonraker", None, {})
    assert got["updated_at"] >= got["created_at"]


def test_an_id_that_is_not_utf8_is_refused_not_stored_replaced(admin_client: TestClient) -> None:
    """``%ED%A0%80`` (an encoded surrogate) reached the route as three U+FFFD and was stored."""
    refused = admin_client.put("/v1/items/%ED%A0%80", json={"title": "x"}, headers=AUTH)
    assert refused.status_code == 400 and "not UTF-8" in refused.json()["message"]
    assert admin_client.get("/v1/items/%EF%BF%BD%EF%BF%BD%EF%BF%BD").status_code == 404


def test_item_without_interactions_is_not_recommendable_by_a_model_that_is_not_text_aware(
    admin_client: TestClient,
) -> None:
    admin_client.put("/v1/items/brand-new", json={"text": "space rocket"}, headers=AUTH)
    assert admin_client.get("/v1/items/brand-new").json()["serving"] == []
    recs = admin_client.get("/v1/users/u1/recommendations", params={"k": 100}).json()
    assert recs["model"] == "mult-vae"
    assert "brand-new" not in {it["item_id"] for it in recs["items"]}
    # Known (trained) items are served by the loaded default model, not from text.
    admin_client.put("/v1/items/4", json={"title": "Item 4"}, headers=AUTH)
    serving = admin_client.get("/v1/items/4").json()["serving"]
    assert serving == [{"model": "mult-vae", "version": "1", "from_text": False}]


@pytest.mark.parametrize(
    ("item_id", "body", "field"),
    [
        ("x", {"txt": "typo"}, "txt"),
        ("x", {"text": "w" * 100_001}, "text"),
        ("x", {"attributes": [1, 2]}, "attributes"),
        ("x" * 257, {"title": "long id"}, None),
    ],
)
def test_bad_items_are_refused_with_a_reason(
    admin_client: TestClient, item_id: str, body: dict[str, object], field: str | None
) -> None:
    r = admin_client.put(f"/v1/items/{item_id}", json=body, headers=AUTH)
    assert r.status_code == 422, r.json()
    if field is None:
        assert "item_id is 257 characters long" in r.json()["message"]
    else:
        assert field in {p["field"] for p in r.json()["problems"]}


def test_unknown_item_is_a_404_saying_how_to_add_it(admin_client: TestClient) -> None:
    r = admin_client.get("/v1/items/never")
    assert r.status_code == 404 and "PUT /v1/items/never" in r.json()["message"]


def test_a_title_too_long_is_counted_in_characters(admin_client: TestClient) -> None:
    """pydantic checks the length of a validated ``Text`` as a generic one: the message
    was "Value should have at most 1000 items after validation"."""
    r = admin_client.put("/v1/items/x", json={"title": "t" * 1001}, headers=AUTH)
    assert r.status_code == 422
    assert r.json()["problems"] == [
        {"field": "title", "message": "String should have at most 1000 characters"}
    ]


def test_an_item_with_too_many_attributes_is_a_422(admin_client: TestClient) -> None:
    """5,000 attributes made a PUT take 0.2-0.9 s; the count has a limit, as the JSON size has."""
    most = {f"a{n}": n for n in range(256)}
    assert (
        admin_client.put("/v1/items/x", json={"attributes": most}, headers=AUTH).status_code == 201
    )
    more = {f"a{n}": n for n in range(5000)}
    r = admin_client.put("/v1/items/x", json={"attributes": more}, headers=AUTH)
    assert r.status_code == 422, r.text
    assert r.json()["message"] == "the item has 5000 attributes; the limit is 256"
    assert len(admin_client.get("/v1/items/x").json()["attributes"]) == 256
    schema = admin_client.get("/openapi.json").json()["components"]["schemas"]["ItemIn"]
    assert schema["properties"]["attributes"]["maxProperties"] == 256


def test_an_id_put_would_refuse_is_a_422_on_get_not_a_404_suggesting_put(
    admin_client: TestClient,
) -> None:
    r = admin_client.get(f"/v1/items/{'x' * 300}")
    assert r.status_code == 422
    assert r.json()["message"] == "item_id is 300 characters long; the limit is 256"


def test_two_replicas_cannot_give_an_attribute_two_kinds(make_client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Replica B has not polled A's PUT yet (an hour's reload interval): the kind check
    reads the database, so B refuses what A would refuse, and both keep refusing."""
    shared = {
        "admin_token": TOKEN,
        "database_url": f"sqlite:///{tmp_path}/shared.db",
        "reload_interval_s": 3600,
    }
    a, b = make_client(**shared), make_client(**shared)
    assert a.put("/v1/items/50", json={"attributes": {"grade": 5}}, headers=AUTH).status_code == 201
    r = b.put("/v1/items/172", json={"attributes": {"grade": "red"}}, headers=AUTH)
    assert r.status_code == 422, r.text
    assert r.json()["message"] == (
        "attribute 'grade' is a string here, but the catalog holds a number for it "
        "(an attribute keeps one kind)"
    )
    assert b.get("/v1/items/172").status_code == 404
    r = b.put("/v1/items/172", json={"attributes": {"grade": 4}}, headers=AUTH)
    assert r.status_code == 201
    r = a.put("/v1/items/50", json={"attributes": {"grade": "red"}}, headers=AUTH)
    assert r.status_code == 422


# --------------------------------------------------------------------------- served from text


def test_a_new_item_is_recommended_and_rated_from_its_text(
    make_client, convmf_store: Path, data: TextRatings
) -> None:  # type: ignore[no-untyped-def]
    client = make_client(admin_token=TOKEN, store_dir=convmf_store, default_model="convmf")
    item_id, (topic, text) = next(iter(data.held_out.items()))
    put = client.put(f"/v1/items/{item_id}", json={"title": "fresh", "text": text}, headers=AUTH)
    assert put.status_code == 201
    assert put.json()["serving"] == [{"model": "convmf", "version": "1", "from_text": True}]

    fan = f"u{topic:02d}"  # user n loves topic n % 2
    recs = client.get(f"/v1/users/{fan}/recommendations", params={"k": 100}).json()
    ranked = [it["item_id"] for it in recs["items"]]
    new = recs["items"][ranked.index(item_id)]
    assert new["from_text"] is True and new["title"] == "fresh"
    assert not any(it["from_text"] for it in recs["items"] if it["item_id"] != item_id)
    # Text matches taste: the new item ranks above every unseen item of the other topic.
    other_topic = [i for i in ranked if int(i[1:]) % 2 != topic and i != item_id]
    assert all(ranked.index(item_id) < ranked.index(i) for i in other_topic)

    # Taste is a population statement: one user's vector of a tiny model is noisy, so the
    # new item's mean predicted rating over the first ten users' fans is compared with haters'.
    users = [f"u{u:02d}" for u in range(10)]
    fans = [_rating(client, u, item_id) for u in users if int(u[1:]) % 2 == topic]
    haters = [_rating(client, u, item_id) for u in users if int(u[1:]) % 2 != topic]
    assert sum(fans) / len(fans) > sum(haters) / len(haters)

    similar = client.get(f"/v1/items/{item_id}/similar", params={"k": 5}).json()
    assert all(int(it["item_id"][1:]) % 2 == topic for it in similar["items"][:3])


def _rating(client: TestClient, user: str, item_id: str) -> float:
    body = client.post("/v1/predictions", json={"user_id": user, "item_ids": [item_id]}).json()
    (prediction,) = body["predictions"]
    assert prediction["from_text"] is True and prediction["fallback"] is False  # scored from text
    return float(prediction["rating"])


def test_another_server_picks_the_item_up_at_its_reload_poll(
    make_client, convmf_store: Path, data: TextRatings, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    shared = {
        "admin_token": TOKEN,
        "store_dir": convmf_store,
        "default_model": "convmf",
        "database_url": f"sqlite:///{tmp_path}/shared.db",
    }
    writer, reader = make_client(**shared), make_client(**shared)
    item_id, (_, text) = list(data.held_out.items())[1]
    assert writer.put(f"/v1/items/{item_id}", json={"text": text}, headers=AUTH).status_code == 201
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        r = reader.post("/v1/predictions", json={"user_id": "u00", "item_ids": [item_id]})
        assert r.status_code == 200, r.text  # unknown until polled: the flagged baseline
        if not r.json()["predictions"][0]["fallback"]:
            break
        time.sleep(0.05)
    assert r.json()["predictions"][0]["from_text"] is True


@pytest.mark.parametrize("failing", ["items_changed_since", "extend_model"])
def test_a_put_this_server_could_not_apply_says_so(
    make_client,  # type: ignore[no-untyped-def]
    convmf_store: Path,
    data: TextRatings,
    monkeypatch: pytest.MonkeyPatch,
    failing: str,
) -> None:
    """A PUT commits, then this server reads the change and scores the new item from its
    text before answering; a failed read or scoring was logged and swallowed, and the
    answer looked like a complete one. It stays a 201 (the item is stored) with
    ``refresh_pending`` true, and ``serving`` says this server does not serve it yet;
    the next poll does."""
    from sqlalchemy.exc import OperationalError

    import app.catalog.sync as sync_module

    client = make_client(admin_token=TOKEN, store_dir=convmf_store, default_model="convmf")
    item_id, (_, text) = list(data.held_out.items())[2]

    def down(*args: object, **kwargs: object) -> None:
        raise OperationalError("SELECT 1", {}, Exception("connection lost"))

    real = getattr(sync_module, failing)
    monkeypatch.setattr(sync_module, failing, down)
    put = client.put(f"/v1/items/{item_id}", json={"text": text}, headers=AUTH)
    assert put.status_code == 201, put.text
    assert put.json()["refresh_pending"] is True and put.json()["serving"] == []
    body = {"user_id": "u00", "item_ids": [item_id]}
    assert client.post("/v1/predictions", json=body).json()["predictions"][0]["fallback"]
    monkeypatch.setattr(sync_module, failing, real)
    client.app.state.catalog.sync_now()  # the next poll
    served = [{"model": "convmf", "version": "1", "from_text": True}]
    assert client.get(f"/v1/items/{item_id}").json()["serving"] == served
    again = client.put(f"/v1/items/{item_id}", json={"text": text}, headers=AUTH)
    assert again.json()["refresh_pending"] is False and again.json()["serving"] == served


def test_an_id_with_a_slash_is_addressable(admin_client: TestClient) -> None:
    """Ids are opaque strings and a write accepts ``a/b``; the routes' path parameters did
    not match a ``/`` (sent as ``%2F``, it arrives decoded), so such an item or user could
    never be read, replaced or recommended for: a bare "Not Found" from the router."""
    r = admin_client.put("/v1/items/a%2Fb", json={"title": "slashed"}, headers=AUTH)
    assert r.status_code == 201, r.text
    assert admin_client.get("/v1/items/a%2Fb").json()["item_id"] == "a/b"
    assert admin_client.get("/v1/items/a/b").json()["title"] == "slashed"
    similar = admin_client.get("/v1/items/a%2Fb/similar")
    assert similar.status_code == 404 and similar.json()["error"] == "unknown_item"
    written = {"user_id": "team/alice", "item_id": "3", "rating": 5}
    assert admin_client.post("/v1/interactions", json=written).status_code == 201
    recs = admin_client.get("/v1/users/team%2Falice/recommendations", params={"k": 3})
    assert recs.status_code == 200 and recs.json()["user_id"] == "team/alice"
    assert "3" not in {item["item_id"] for item in recs.json()["items"]}  # its write is seen
    taken = admin_client.put("/v1/items/a%2Fsimilar", json={}, headers=AUTH)  # that URL's GET
    assert taken.status_code == 422 and "ends in '/similar'" in taken.json()["message"]
    paths = admin_client.get("/openapi.json").json()["paths"]
    assert {"/v1/items/{item_id}", "/v1/items/{item_id}/similar"} <= set(paths)
    assert "/v1/users/{user_id}/recommendations" in paths


def test_an_id_with_a_line_break_is_addressable(admin_client: TestClient) -> None:
    """A write accepts ``a\\nb`` (an id is any text with a non-space); the path parameters
    matched Starlette's ``.*``, which stops at a newline: the router's bare 404."""
    r = admin_client.put("/v1/items/a%0Ab", json={"title": "broken"}, headers=AUTH)
    assert r.status_code == 201, r.text
    assert admin_client.get("/v1/items/a%0Ab").json()["item_id"] == "a\nb"
    similar = admin_client.get("/v1/items/a%0Ab/similar")
    assert similar.status_code == 404 and similar.json()["error"] == "unknown_item"
    written = {"user_id": "line\nbreak", "item_id": "3", "rating": 5}
    assert admin_client.post("/v1/interactions", json=written).status_code == 201
    recs = admin_client.get("/v1/users/line%0Abreak/recommendations", params={"k": 3})
    assert recs.status_code == 200 and recs.json()["user_id"] == "line\nbreak"
