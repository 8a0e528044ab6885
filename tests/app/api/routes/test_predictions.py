"""POST /v1/predictions: rating models only; what the model cannot predict gets a flagged baseline."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.app.conftest import tiny_interactions


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


def _training_ratings(user_id: str | None = None) -> np.ndarray:
    """Ratings of the tiny training data (of one user when given), as the store holds them."""
    data = tiny_interactions()
    if user_id is None:
        return data.ratings
    return data.ratings[data.users == data.user_ids.index(user_id)]


def test_unknown_items_get_the_users_mean_flagged_and_known_items_are_unchanged(
    client: TestClient,
) -> None:
    _, alone = _predict(client, user_id="u2", item_ids=["7", "3"], model="biased-mf")
    status, body = _predict(
        client, user_id="u2", item_ids=["7", "x1", "3", "x2", "x1"], model="biased-mf"
    )
    assert status == 200, body
    assert [p["item_id"] for p in body["predictions"]] == ["7", "x1", "3", "x2", "x1"]
    assert [p["fallback"] for p in body["predictions"]] == [False, True, False, True, True]
    assert body["unknown_items"] == ["x1", "x2"]
    known = [p for p in body["predictions"] if not p["fallback"]]
    assert known == alone["predictions"]  # the unknown ids change nothing for the others
    user_mean = float(_training_ratings("u2").mean())
    for p in body["predictions"]:
        if p["fallback"]:
            assert p["rating"] == pytest.approx(user_mean, abs=1e-6)
    assert "unknown_items" not in alone


def _prediction_fallbacks(client: TestClient) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("genrec_prediction_fallback_total "):
            return float(line.split()[1])
    raise AssertionError("genrec_prediction_fallback_total is not exported")


def test_baseline_answers_are_counted_in_a_metric(client: TestClient) -> None:
    before = _prediction_fallbacks(client)
    _predict(client, user_id="u2", item_ids=["7", "x1", "3", "x2", "x1"], model="biased-mf")
    assert _prediction_fallbacks(client) == before + 3  # one per baseline answer
    _predict(client, user_id="u2", item_ids=["7", "3"], model="biased-mf")
    assert _prediction_fallbacks(client) == before + 3


def test_an_all_unknown_list_is_answered_with_the_baseline(client: TestClient) -> None:
    status, body = _predict(client, user_id="u5", item_ids=["x1", "x2"], model="biased-mf")
    assert status == 200, body
    user_mean = float(_training_ratings("u5").mean())
    assert [(p["rating"], p["fallback"]) for p in body["predictions"]] == [
        (pytest.approx(user_mean, abs=1e-6), True)
    ] * 2
    assert body["unknown_items"] == ["x1", "x2"]


def test_unknown_user_gets_the_training_mean_until_it_has_logged_ratings(
    client: TestClient,
) -> None:
    status, body = _predict(client, user_id="nobody", item_ids=["7", "x1"], model="biased-mf")
    assert status == 200, body
    training_mean = float(_training_ratings().mean())
    assert [(p["rating"], p["fallback"]) for p in body["predictions"]] == [
        (pytest.approx(training_mean, abs=1e-6), True)
    ] * 2
    assert body["unknown_items"] == ["x1"]

    client.post("/v1/interactions", json={"user_id": "nobody", "item_id": "4", "rating": 5})
    client.post("/v1/interactions", json={"user_id": "nobody", "item_id": "9", "rating": 2})
    status, body = _predict(client, user_id="nobody", item_ids=["7", "x1"], model="biased-mf")
    assert status == 200, body
    (seven, x1) = body["predictions"]
    assert not seven["fallback"] and 1.0 <= seven["rating"] <= 5.0
    assert x1["fallback"] and x1["rating"] == pytest.approx(3.5)  # mean of the logged 5 and 2


def test_a_known_users_logged_ratings_count_in_their_mean(client: TestClient) -> None:
    before = _training_ratings("u2")
    client.post("/v1/interactions", json={"user_id": "u2", "item_id": "59", "rating": 1})
    status, body = _predict(client, user_id="u2", item_ids=["x1"], model="biased-mf")
    assert status == 200, body
    # Item 59 is odd, u2 rates even items only: a new rating, not a replaced one.
    expected = (before.sum() + 1.0) / (len(before) + 1)
    assert body["predictions"][0]["rating"] == pytest.approx(float(expected), abs=1e-6)


def test_bad_request_bodies(client: TestClient) -> None:
    assert _predict(client, user_id="u2", item_ids=[], model="biased-mf")[0] == 422
    assert _predict(client, user_id="", item_ids=["1"], model="biased-mf")[0] == 422
    status, body = _predict(client, user_id="u2", item_ids=["1"], model="nope")
    assert status == 404 and body["error"] == "unknown_model"
