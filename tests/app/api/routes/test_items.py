"""GET /v1/items/{id}/similar: cosine over item vectors, else over training columns."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient


@pytest.mark.parametrize("model", ["mult-vae", "biased-mf", "popularity"])
def test_similar_items_exclude_the_item_itself(client: TestClient, model: str) -> None:
    r = client.get("/v1/items/4/similar", params={"k": 5, "model": model})
    body = r.json()
    assert r.status_code == 200, body
    assert (body["item_id"], body["title"], body["model"]) == ("4", "Item 4", model)
    ids = [it["item_id"] for it in body["items"]]
    assert len(ids) == 5 and "4" not in ids
    scores = [it["score"] for it in body["items"]]
    assert scores == sorted(scores, reverse=True)
    assert all(-1.0001 <= s <= 1.0001 for s in scores)


def test_cooccurrence_similarity_follows_the_taste_groups(client: TestClient) -> None:
    # Popularity has no item vectors: even items are only ever co-rated with even items.
    body = client.get("/v1/items/4/similar", params={"k": 10, "model": "popularity"}).json()
    assert all(int(it["item_id"]) % 2 == 0 for it in body["items"])


def test_unknown_item_and_bad_k(client: TestClient) -> None:
    r = client.get("/v1/items/nope/similar")
    assert r.status_code == 404 and "nope" in r.json()["message"]
    assert client.get("/v1/items/4/similar", params={"k": 0}).status_code == 422


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("k=5&k=500", "given 2 times"),
        ("k=5.0", "digits"),
        ("k=5_0", "digits"),
        ("model=ease&model=popularity", "given 2 times"),
    ],
)
def test_a_query_read_one_way_only(client: TestClient, query: str, says: str) -> None:
    """Parsed like the user list's query: nothing a client did not mean is guessed."""
    for path in ("/v1/items/4/similar", "/v1/users/u1/recommendations"):
        r = client.get(f"{path}?{query}")
        assert r.status_code == 422 and says in r.json()["message"], (path, r.json())
