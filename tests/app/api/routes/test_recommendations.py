"""GET /v1/users/{id}/recommendations and POST /v1/recommendations, embedded mode (and two
replicas on Postgres + Redis for the memory tier in front of Redis)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from app.core.cache import MemoryCache, TieredCache


def test_known_user_gets_k_unseen_items_with_titles(
    client: TestClient, seen_items: Callable[[str], set[str]]
) -> None:
    r = client.get("/v1/users/u3/recommendations", params={"k": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["user_id"], body["model"], body["version"], body["fallback"]) == (
        "u3",
        "mult-vae",
        "1",
        False,
    )
    ids = [it["item_id"] for it in body["items"]]
    assert len(ids) == 5 and not set(ids) & seen_items("u3")
    assert all(it["title"] == f"Item {it['item_id']}" for it in body["items"])
    scores = [it["score"] for it in body["items"]]
    assert scores == sorted(scores, reverse=True)
    assert "unknown_items" not in body


def test_exclude_seen_false_and_filters(
    client: TestClient, seen_items: Callable[[str], set[str]]
) -> None:
    everything = client.get("/v1/users/u3/recommendations", params={"k": 60, "exclude_seen": False})
    assert len(everything.json()["items"]) == 60  # all items, seen ones included
    unseen = client.get("/v1/users/u3/recommendations", params={"k": 60}).json()["items"]
    assert len(unseen) == 60 - len(seen_items("u3"))  # fewer than k exist: all of them
    top = unseen[0]["item_id"]
    r = client.get("/v1/users/u3/recommendations", params={"k": 3, "exclude": [top]})
    assert top not in [it["item_id"] for it in r.json()["items"]]
    r = client.get(
        "/v1/users/u3/recommendations",
        params={"k": 10, "include": ["1", "2", "3", "no-such-item"], "exclude_seen": False},
    )
    assert sorted(it["item_id"] for it in r.json()["items"]) == ["1", "2", "3"]
    assert r.json()["unknown_items"] == ["no-such-item"]


def test_an_include_of_only_unknown_items_says_why_the_list_is_empty(client: TestClient) -> None:
    r = client.get("/v1/users/u3/recommendations", params={"k": 3, "include": ["x", "y", "x"]})
    body = r.json()
    assert r.status_code == 200, body
    assert (body["items"], body["short_by"], body["unknown_items"]) == ([], 3, ["x", "y"])
    r = client.post(
        "/v1/recommendations",
        json={"history": [{"item_id": "zzz"}], "include": ["zzz", "2", "q"], "k": 3},
    )
    assert r.json()["unknown_items"] == ["zzz", "q"]


def test_unknown_user_gets_flagged_popularity_fallback(client: TestClient) -> None:
    r = client.get("/v1/users/stranger/recommendations", params={"k": 4})
    body = r.json()
    assert r.status_code == 200 and body["fallback"] is True
    scores = [it["score"] for it in body["items"]]
    assert len(scores) == 4 and scores == sorted(scores, reverse=True)


def test_interaction_for_unseen_user_changes_next_recommendations(client: TestClient) -> None:
    before = client.get("/v1/users/newcomer/recommendations", params={"k": 10}).json()
    assert before["fallback"] is True
    posted = before["items"][0]["item_id"]  # the most popular item
    r = client.post(
        "/v1/interactions", json={"user_id": "newcomer", "item_id": posted, "rating": 5}
    )
    assert r.status_code == 201
    after = client.get("/v1/users/newcomer/recommendations", params={"k": 10}).json()
    assert after["fallback"] is False
    assert posted not in [it["item_id"] for it in after["items"]]
    assert after["items"] != before["items"]


def test_known_user_state_is_cached_then_refolded_after_an_interaction(
    client: TestClient,
) -> None:
    cache = client.app.state.services.cache  # type: ignore[attr-defined]
    assert isinstance(cache, MemoryCache)
    first = client.get("/v1/users/u5/recommendations", params={"k": 5}).json()
    assert cache.get("u5", "mult-vae", "1") is not None
    again = client.get("/v1/users/u5/recommendations", params={"k": 5}).json()
    assert again.pop("recommendation_id") != first["recommendation_id"]  # a new impression
    assert again == {k: v for k, v in first.items() if k != "recommendation_id"}
    new_item = first["items"][0]["item_id"]
    _, stamp_before = cache.get("u5", "mult-vae", "1")
    client.post("/v1/interactions", json={"user_id": "u5", "item_id": new_item})
    # The write leaves the entry; its stamp no longer matches the log, so it is not served.
    assert cache.get("u5", "mult-vae", "1")[1] == stamp_before
    after = client.get("/v1/users/u5/recommendations", params={"k": 5}).json()
    assert new_item not in [it["item_id"] for it in after["items"]]
    assert cache.get("u5", "mult-vae", "1")[1] > stamp_before  # refolded by the read


def test_a_write_leaves_the_cached_state_and_the_next_read_refolds_it(
    client: TestClient,
) -> None:
    services = client.app.state.services  # type: ignore[attr-defined]
    client.get("/v1/users/u7/recommendations", params={"k": 5})
    state_before, stamp_before = services.cache.get("u7", "mult-vae", "1")
    client.post("/v1/interactions", json={"user_id": "u7", "item_id": "1", "rating": 5})
    assert services.cache.get("u7", "mult-vae", "1")[1] == stamp_before  # still there
    client.get("/v1/users/u7/recommendations", params={"k": 5})
    state_after, stamp_after = services.cache.get("u7", "mult-vae", "1")
    assert stamp_after > stamp_before  # recomputed from the newer log row
    assert state_after.tolist() != state_before.tolist()


def test_bad_k_and_unknown_model(client: TestClient) -> None:
    for k in (0, 5000, -1):
        r = client.get("/v1/users/u1/recommendations", params={"k": k})
        assert r.status_code == 422 and "k must be between 1 and 1000" in r.json()["message"]
    r = client.get("/v1/users/u1/recommendations", params={"k": "ten"})
    assert r.status_code == 422 and r.json()["problems"][0]["field"] == "k"
    r = client.get("/v1/users/u1/recommendations", params={"model": "gpt"})
    assert r.status_code == 404
    available = ["biased-mf", "ease", "mult-dae", "mult-vae", "popularity"]
    assert r.json()["details"]["available"] == available
    assert "unknown model 'gpt'" in r.json()["message"]


def test_blank_user_id_is_rejected(client: TestClient) -> None:
    r = client.get("/v1/users/%20/recommendations")
    assert r.status_code == 422
    assert r.json()["message"].startswith("user_id is only white space (1 character)")


def test_ad_hoc_history_folds_in_and_lists_unknown_items(client: TestClient) -> None:
    r = client.post(
        "/v1/recommendations",
        json={
            "history": [{"item_id": "2", "rating": 5}, {"item_id": "4"}, {"item_id": "zzz"}],
            "k": 5,
            "model": "ease",
        },
    )
    body = r.json()
    assert r.status_code == 200, body
    assert "user_id" not in body and body["fallback"] is False and body["model"] == "ease"
    assert body["unknown_items"] == ["zzz"]
    assert not {"2", "4"} & {it["item_id"] for it in body["items"]}
    empty = client.post("/v1/recommendations", json={"history": [], "k": 3}).json()
    assert empty["fallback"] is True and len(empty["items"]) == 3


def test_ad_hoc_bad_input(client: TestClient) -> None:
    r = client.post("/v1/recommendations", json={"history": [{"item_id": ""}]})
    assert r.status_code == 422 and r.json()["problems"][0]["field"] == "history[0].item_id"
    r = client.post("/v1/recommendations", json={"history": [], "k": 0})
    assert r.status_code == 422
    r = client.post("/v1/recommendations", json={"histroy": []})
    assert r.status_code == 422 and "histroy" in r.json()["message"]


def test_model_without_production_version_is_503(client: TestClient) -> None:
    r = client.get("/v1/users/u1/recommendations", params={"model": "mult-dae"})
    assert r.status_code == 503 and "no production version" in r.json()["message"]


def test_filter_ids_and_ad_hoc_ratings_are_validated(client: TestClient) -> None:
    r = client.get("/v1/users/u1/recommendations", params={"exclude": ["1", "x" * 300]})
    assert r.status_code == 422 and "exclude[1] is 300 characters long" in r.json()["message"]
    r = client.get("/v1/users/u1/recommendations", params={"include": [" "]})
    assert r.status_code == 422 and "include[0]" in r.json()["message"]
    r = client.get("/v1/users/u1/recommendations", params={"model": "m" * 65})
    assert r.status_code == 422 and r.json()["problems"][0]["field"] == "model"
    body = {"history": [{"item_id": "2", "rating": 4}, {"item_id": "3", "rating": 1e300}]}
    r = client.post("/v1/recommendations", json=body)
    assert r.status_code == 422 and "history[1].rating" in r.json()["message"]
    assert "[1, 5]" in r.json()["message"]


def test_error_bodies_are_documented_as_sent(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    schema = document["components"]["schemas"]["ErrorResponse"]
    assert set(schema["required"]) == {"error", "request_id"}
    assert {"message", "problems", "details"} <= set(schema["properties"])
    for operations in document["paths"].values():
        for operation in operations.values():
            if "422" in operation["responses"]:
                body = operation["responses"]["422"]["content"]["application/json"]["schema"]
                assert body == {"$ref": "#/components/schemas/ErrorResponse"}


@pytest.mark.integration
def test_a_state_in_one_replicas_memory_is_refolded_after_another_replicas_write(
    make_client: Callable[..., TestClient],
    postgres_url: str,
    redis_url: str,
    redis_namespace: str,
) -> None:
    """Two replicas on one Postgres and Redis: replica b's write deletes the Redis entry but
    cannot reach replica a's memory tier; a's next batch still sees the new log row (the
    stamp differs) and folds the user in again instead of serving what it holds."""
    shared = {"database_url": postgres_url, "redis_url": redis_url}
    a = make_client(cache_namespace=redis_namespace, **shared)
    b = make_client(cache_namespace=redis_namespace, **shared)
    cache_a = a.app.state.services.cache  # type: ignore[attr-defined]
    assert isinstance(cache_a, TieredCache)
    a.get("/v1/users/u6/recommendations", params={"k": 5})
    held = cache_a.local.get("u6", "mult-vae", "1")
    assert held is not None
    r = b.post("/v1/interactions", json={"user_id": "u6", "item_id": "1", "rating": 5})
    assert r.status_code == 201
    assert cache_a.local.get("u6", "mult-vae", "1") is not None  # still held by a
    a.get("/v1/users/u6/recommendations", params={"k": 5})
    refolded = cache_a.local.get("u6", "mult-vae", "1")
    assert refolded is not None and refolded[1] != held[1]
    assert refolded[0].tolist() != held[0].tolist()
