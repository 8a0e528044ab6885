"""POST /v1/predictions: rating models only, unknown items named, unknown users 404."""

from __future__ import annotations

from fastapi.testclient import TestClient


def _predict(client: TestClient, **body: object) -> tuple[int, dict]:  # type: ignore[type-arg]
    r = client.post("/v1/predictions", json=body)
    return r.status_code, r.json()


def test_known_user_gets_ratings_in_range_in_request_order(client: TestClient) -> None:
    status, body = _predict(client, user_id="u2", item_ids=["7", "3", "7"], model="biased-mf")
    assert status == 200, body
    assert (body["user_id"], body["model"], body["version"]) == ("u2", "biased-mf", "1")
    assert [p["item_id"] for p in body["predictions"]] == ["7", "3", "7"]
    ratings = [p["rating"] for p in body["predictions"]]
    assert all(1.0 <= r <= 5.0 for r in ratings) and ratings[0] == ratings[2]


def test_top_k_model_says_it_does_not_predict_ratings(client: TestClient) -> None:
    status, body = _predict(client, user_id="u2", item_ids=["7"])  # default: mult-vae
    assert status == 422 and body["error"] == "not_a_rating_model"
    assert "does not predict ratings" in body["message"]


def test_unknown_items_are_named(client: TestClient) -> None:
    status, body = _predict(client, user_id="u2", item_ids=["7", "x1", "x2"], model="biased-mf")
    assert status == 422 and body["details"]["unknown_items"] == ["x1", "x2"]
    assert "x1, x2" in body["message"]


def test_unknown_user_is_404_until_it_has_logged_ratings(client: TestClient) -> None:
    status, body = _predict(client, user_id="nobody", item_ids=["7"], model="biased-mf")
    assert status == 404 and "nobody" in body["message"]
    client.post("/v1/interactions", json={"user_id": "nobody", "item_id": "4", "rating": 5})
    status, body = _predict(client, user_id="nobody", item_ids=["7"], model="biased-mf")
    assert status == 200 and 1.0 <= body["predictions"][0]["rating"] <= 5.0


def test_bad_request_bodies(client: TestClient) -> None:
    assert _predict(client, user_id="u2", item_ids=[], model="biased-mf")[0] == 422
    assert _predict(client, user_id="", item_ids=["1"], model="biased-mf")[0] == 422
    status, body = _predict(client, user_id="u2", item_ids=["1"], model="nope")
    assert status == 404 and body["error"] == "unknown_model"
