"""POST /v1/interactions: validation, one transaction, 503 when the database is down."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi.testclient import TestClient
from sqlalchemy import select

from app.core.db import session_scope
from app.db_models import Interaction


def _rows(client: TestClient) -> list[Interaction]:
    services = client.app.state.services  # type: ignore[attr-defined]
    with session_scope(services.sessions) as s:
        return list(s.scalars(select(Interaction).order_by(Interaction.id)))


def test_single_and_batch_are_stored(client: TestClient) -> None:
    r = client.post(
        "/v1/interactions",
        json={"user_id": "a", "item_id": "1", "rating": 4, "timestamp": "2026-11-23T10:00:00Z"},
    )
    assert (r.status_code, r.json()) == (201, {"accepted": 1})
    batch = {"interactions": [{"user_id": "b", "item_id": str(i)} for i in range(3)]}
    r = client.post("/v1/interactions", json=batch)
    assert (r.status_code, r.json()) == (201, {"accepted": 3})
    rows = _rows(client)
    assert [(x.user_id, x.item_id, x.rating) for x in rows] == [
        ("a", "1", 4.0),
        ("b", "0", None),
        ("b", "1", None),
        ("b", "2", None),
    ]
    assert rows[0].ts.replace(tzinfo=UTC) == datetime(2026, 11, 23, 10, tzinfo=UTC)


def test_invalid_entries_are_rejected_and_nothing_is_written(client: TestClient) -> None:
    good = {"user_id": "a", "item_id": "1"}
    cases = {
        "empty id": {"user_id": "", "item_id": "1"},
        "blank id": {"user_id": "   ", "item_id": "1"},
        "long id": {"user_id": "x" * 257, "item_id": "1"},
        "rating above range": {**good, "rating": 6},
        "rating below range": {**good, "rating": 0.5},
        "bad timestamp": {**good, "timestamp": "yesterday"},
        "unknown field": {**good, "itemId": "1"},
        "missing item": {"user_id": "a"},
    }
    for what, bad in cases.items():
        r = client.post("/v1/interactions", json={"interactions": [good, bad]})
        assert r.status_code == 422, what
        assert "interactions[1]" in r.json()["message"], (what, r.json())
    r = client.post("/v1/interactions", json={**good, "rating": 9})
    assert "[1, 5]" in r.json()["message"]
    assert client.post("/v1/interactions", json={"interactions": []}).status_code == 422
    assert client.post("/v1/interactions", json=[good]).status_code == 422
    assert _rows(client) == []


def test_batch_larger_than_max_batch_is_413(make_client) -> None:  # type: ignore[no-untyped-def]
    client = make_client(max_batch=3)
    batch = {"interactions": [{"user_id": "a", "item_id": str(i)} for i in range(4)]}
    r = client.post("/v1/interactions", json=batch)
    assert r.status_code == 413 and "max_batch=3" in r.json()["message"]
    assert _rows(client) == []


def test_unreachable_database_is_503_never_201(make_client) -> None:  # type: ignore[no-untyped-def]
    # Nothing listens on port 1: every connection attempt is refused at once.
    client = make_client(database_url="postgresql://postgres@127.0.0.1:1/genrec")
    r = client.post("/v1/interactions", json={"user_id": "a", "item_id": "1"})
    assert r.status_code == 503
    assert r.json()["error"] == "database_unavailable" and "retry" in r.json()["message"]
    # Reads keep working from the artifact, flagged as degraded.
    r = client.get("/v1/users/u1/recommendations")
    assert r.status_code == 200
    assert (r.json()["degraded"], r.json()["fallback"]) == (True, False)


def test_timestamps_out_of_range_are_422_not_500(client: TestClient) -> None:
    # 0001-01-01 at +01:00 is before year 1 in UTC: converting it overflows datetime.
    for ts in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-05:00", "1969-12-31T23:59:59Z"):
        r = client.post("/v1/interactions", json={"user_id": "a", "item_id": "1", "timestamp": ts})
        assert r.status_code == 422 and "timestamp must lie between" in r.json()["message"], ts
    assert _rows(client) == []


def test_implicit_default_model_accepts_explicit_ratings(make_client, store_dir) -> None:  # type: ignore[no-untyped-def]
    import json

    manifest_path = store_dir / "mult-vae" / "versions" / "1" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    assert manifest["scorer_config"]["rating_range"] == [1.0, 5.0]
    client = make_client()
    services = client.app.state.services  # type: ignore[attr-defined]
    model = services.holder.get("mult-vae")
    model.scorer.config["rating_range"] = [0.0, 1.0]  # as trained on clicks
    r = client.post("/v1/interactions", json={"user_id": "a", "item_id": "1", "rating": 4.5})
    assert r.status_code == 201


def test_an_integer_too_long_for_python_is_a_400_on_every_body_route(client: TestClient) -> None:
    """Python refuses to convert integers of more than 4,300 digits (a ValueError, not a
    JSONDecodeError): each POST route answers 400 saying so (``app.api.body.unreadable``)."""
    huge = "9" * 5_000
    bodies = {
        "/v1/interactions": '{"user_id": "a", "item_id": "1", "rating": ' + huge + "}",
        "/v1/predictions": '{"user_id": "1", "item_ids": ["1"], "model": ' + huge + "}",
        "/v1/recommendations": '{"history": [], "k": ' + huge + "}",
    }
    for route, body in bodies.items():
        r = client.post(route, content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 400, (route, r.text)
        assert r.json()["message"] == "body: a number of more than 4,300 digits"
    assert _rows(client) == []
