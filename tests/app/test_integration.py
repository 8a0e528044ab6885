"""The service against the real Postgres and Redis (fixtures from tests/conftest.py)."""

from __future__ import annotations

import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from tests.conftest import require_tool

pytestmark = pytest.mark.integration


def _uid() -> str:
    return f"it-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def services_client(
    make_client: Callable[..., TestClient], postgres_url: str, redis_url: str, redis_namespace: str
) -> TestClient:
    return make_client(
        database_url=postgres_url, redis_url=redis_url, cache_namespace=redis_namespace
    )


def test_interaction_is_committed_before_the_201(
    services_client: TestClient, postgres_url: str
) -> None:
    user = _uid()
    batch = {"interactions": [{"user_id": user, "item_id": str(i), "rating": 4} for i in range(3)]}
    r = services_client.post("/v1/interactions", json=batch)
    assert r.status_code == 201
    other = create_engine(postgres_url)  # a separate connection: sees only committed rows
    try:
        with other.connect() as conn:
            rows = conn.execute(
                text("SELECT item_id, rating FROM interactions WHERE user_id = :u ORDER BY id"),
                {"u": user},
            ).all()
    finally:
        other.dispose()
    assert [(r.item_id, r.rating) for r in rows] == [("0", 4.0), ("1", 4.0), ("2", 4.0)]


def test_a_post_leaves_redis_alone_and_the_next_read_refolds(
    services_client: TestClient, redis_url: str, redis_namespace: str
) -> None:
    """Writes do not touch the cache (app.serving.interactions): the entries of every model
    stay in Redis, stamped with the old log, and each model's next read refolds its own."""
    client = redis.Redis.from_url(redis_url)
    key = f"{redis_namespace}:state:u3"
    cache = services_client.app.state.services.cache  # type: ignore[attr-defined]
    try:
        before = services_client.get("/v1/users/u3/recommendations", params={"k": 5}).json()
        services_client.get("/v1/users/u3/recommendations", params={"model": "ease"})
        cache.flush()  # new states reach Redis from a writer thread (app.core.cache_writes)
        stamps = client.hmget(key, ["mult-vae:1:stamp", "ease:1:stamp"])
        assert None not in stamps  # one hash, a field per model version
        posted = before["items"][0]["item_id"]
        r = services_client.post("/v1/interactions", json={"user_id": "u3", "item_id": posted})
        assert r.status_code == 201
        assert client.hmget(key, ["mult-vae:1:stamp", "ease:1:stamp"]) == stamps
        for model in ("mult-vae", "ease"):
            after = services_client.get(
                "/v1/users/u3/recommendations", params={"k": 5, "model": model}
            ).json()
            assert posted not in [it["item_id"] for it in after["items"]]
        cache.flush()
        refreshed = client.hmget(key, ["mult-vae:1:stamp", "ease:1:stamp"])
        assert all(int(new) > int(old) for new, old in zip(refreshed, stamps, strict=True))
    finally:
        client.close()


def test_prediction_baseline_comes_from_the_users_logged_ratings_in_postgres(
    services_client: TestClient,
) -> None:
    """A candidate list with an item the model never saw is answered, not refused (issue 16.9)."""
    user = _uid()

    def predict() -> dict:  # type: ignore[type-arg]
        r = services_client.post(
            "/v1/predictions",
            json={"user_id": user, "item_ids": ["2", "brand-new", "8"], "model": "biased-mf"},
        )
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    cold = predict()  # nothing known about the user: the version's training mean everywhere
    assert [p["fallback"] for p in cold["predictions"]] == [True, True, True]
    assert len({p["rating"] for p in cold["predictions"]}) == 1
    batch = [
        {"user_id": user, "item_id": i, "rating": r} for i, r in (("4", 5), ("6", 4), ("9", 1))
    ]
    assert services_client.post("/v1/interactions", json={"interactions": batch}).status_code == 201
    for body in (predict(), predict()):  # computed, then from the Redis-cached state
        two, new, eight = body["predictions"]
        assert not two["fallback"] and not eight["fallback"]
        assert new["fallback"] and new["rating"] == pytest.approx(10 / 3)
        assert body["unknown_items"] == ["brand-new"] and body["degraded"] is False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def own_redis() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A private redis-server on a free port that the test may kill (never the shared one)."""
    binary = require_tool("redis-server", "the Redis-outage test runs its own Redis")
    port = _free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while True:
        try:
            redis.Redis.from_url(url).ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail("private redis-server did not start")
            time.sleep(0.05)
    yield url, proc
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


def test_every_endpoint_answers_with_redis_down(
    make_client: Callable[..., TestClient],
    postgres_url: str,
    own_redis: tuple[str, subprocess.Popen[bytes]],
) -> None:
    url, proc = own_redis
    client = make_client(database_url=postgres_url, redis_url=url, cache_namespace="outage")
    warm = client.get("/v1/users/u4/recommendations", params={"k": 5}).json()
    assert warm["fallback"] is False
    proc.kill()
    proc.wait(timeout=10)

    again = client.get("/v1/users/u4/recommendations", params={"k": 5}).json()
    assert again.pop("recommendation_id") != warm.pop("recommendation_id")  # a new impression
    assert again == warm
    user = _uid()
    r = client.post("/v1/interactions", json={"user_id": user, "item_id": "6", "rating": 5})
    assert r.status_code == 201
    folded = client.get(f"/v1/users/{user}/recommendations", params={"k": 5}).json()
    assert folded["fallback"] is False and "6" not in [i["item_id"] for i in folded["items"]]
    adhoc = client.post("/v1/recommendations", json={"history": [{"item_id": "6"}], "k": 5})
    assert adhoc.status_code == 200 and adhoc.json()["items"] == folded["items"]
    r = client.post(
        "/v1/predictions", json={"user_id": user, "item_ids": ["2"], "model": "biased-mf"}
    )
    assert r.status_code == 200 and 1.0 <= r.json()["predictions"][0]["rating"] <= 5.0
    assert client.get("/v1/items/6/similar", params={"k": 3}).status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["cache"]["ok"] is False
    assert client.get("/healthz").status_code == 200
    errors = [
        line
        for line in client.get("/metrics").text.splitlines()
        if line.startswith("genrec_cache_errors_total")
    ]
    assert float(errors[0].split()[-1]) > 0


def test_concurrent_predictions_batched_answer_as_lone_ones(
    services_client: TestClient,
) -> None:
    """Predictions join micro-batches: 24 concurrent requests (known users, an unknown one,
    an unknown item) get exactly the answers each got alone."""
    from concurrent.futures import ThreadPoolExecutor

    users = [str(u) for u in range(1, 12)] + ["nobody-" + _uid()]

    def predict(user: str) -> dict:  # type: ignore[type-arg]
        r = services_client.post(
            "/v1/predictions",
            json={"user_id": user, "item_ids": ["1", "50", "no-such", "181"], "model": "biased-mf"},
        )
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    alone = {user: predict(user) for user in users}
    with ThreadPoolExecutor(12) as pool:
        together = list(pool.map(predict, users + users))
    for user, body in zip(users + users, together, strict=True):
        assert body == alone[user]
