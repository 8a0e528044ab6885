"""Group commit of interaction writes against the real Postgres (and Redis)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection

from app.core.errors import ApiError
from app.repository import NewInteraction, add_interactions
from app.schemas import InteractionIn
from app.serving import interactions as interactions_module

pytestmark = pytest.mark.integration


@pytest.fixture
def services_client(
    make_client: Callable[..., TestClient], postgres_url: str, redis_url: str, redis_namespace: str
) -> TestClient:
    return make_client(
        database_url=postgres_url, redis_url=redis_url, cache_namespace=redis_namespace
    )


def _logged(postgres_url: str, users: Sequence[str]) -> dict[str, int]:
    """Committed rows per user, read on a separate connection."""
    other = create_engine(postgres_url)
    try:
        with other.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT user_id, count(*) FROM interactions "
                    "WHERE user_id = ANY(:users) GROUP BY user_id"
                ),
                {"users": list(users)},
            ).all()
    finally:
        other.dispose()
    return {user: int(n) for user, n in rows}


def _one(user: str) -> list[InteractionIn]:
    return [InteractionIn(user_id=user, item_id="1", rating=4)]


def test_a_failed_group_commit_acknowledges_none_of_its_requests(
    services_client: TestClient, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first write holds the writer; three more queue and form one group, whose one
    statement Postgres then refuses (a fourth row, slipped in here, too long for its
    column): each of the three gets the 503, none is stored, and the writer goes on."""
    logger = services_client.app.state.services.interactions  # type: ignore[attr-defined]
    run = uuid.uuid4().hex[:8]
    entered, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def failing_add(connection: Connection, rows: Sequence[NewInteraction]) -> int:
        calls.append(len(rows))
        if len(calls) == 1:
            entered.set()
            assert release.wait(10)
        if len(calls) == 2:  # the group's rows and one the database refuses, in one INSERT
            rows = [*rows, NewInteraction(f"gc-{run}-" + "x" * 300, "1", 4.0)]
        return add_interactions(connection, rows)

    monkeypatch.setattr(interactions_module, "add_interactions", failing_add)
    users = [f"gc-{run}-{n}" for n in range(5)]
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(logger.record, _one(users[0]))
        assert entered.wait(10)
        group = [pool.submit(logger.record, _one(u)) for u in users[1:4]]
        while len(logger._group._pending) < 3:  # all three queued behind the first write
            threading.Event().wait(0.005)
        release.set()
        assert first.result(10) == 1
        for future in group:
            with pytest.raises(ApiError) as failed:
                future.result(10)
            assert failed.value.status == 503
    assert calls[:2] == [1, 3]  # the three requests shared one statement
    assert logger.record(_one(users[4])) == 1
    assert _logged(postgres_url, users) == {users[0]: 1, users[4]: 1}


def test_concurrent_writes_are_each_committed_before_they_are_acknowledged(
    services_client: TestClient, postgres_url: str
) -> None:
    """32 concurrent POSTs, two rows each: every 201 is in the database, and every request's
    user then gets recommendations that exclude what it just logged (no stale answer)."""
    run = uuid.uuid4().hex[:8]
    users = [f"gcc-{run}-{n}" for n in range(32)]

    def post(user: str) -> Any:
        body = {
            "interactions": [
                {"user_id": user, "item_id": "50", "rating": 5},
                {"user_id": user, "item_id": "181", "rating": 5},
            ]
        }
        return services_client.post("/v1/interactions", json=body)

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(post, users))
    assert [a.status_code for a in answers] == [201] * len(users)
    assert all(a.json() == {"accepted": 2} for a in answers)
    assert _logged(postgres_url, users) == dict.fromkeys(users, 2)
    recs = services_client.get(f"/v1/users/{users[0]}/recommendations", params={"k": 20}).json()
    assert {"50", "181"}.isdisjoint(item["item_id"] for item in recs["items"])
