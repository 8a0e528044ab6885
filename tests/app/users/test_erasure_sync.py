"""The erasure poll (``app.users.sync.ErasureSync``): a server that learns of an erasure
drops the user's cached states, those cached since an earlier erasure of theirs too."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from app.core.cache import MemoryCache
from app.core.db import session_scope
from app.core.metrics import Metrics
from app.db_models import Impression
from app.repository import NewImpression, insert_impressions
from app.serving.erased import ErasedUsers, cache_key
from app.serving.state import user_context
from app.users import ErasureSync, erase_users
from tests.app.conftest import ClientFactory


@pytest.fixture
def client(make_client: ClientFactory) -> TestClient:
    """The embedded app with its background polls an hour apart: these tests call the
    erasure poll (``refresh``) themselves and count what it found, which a background
    poll running between ``erase_users`` and that call would have found first (seen
    red once under load with the suite's 0.05 s interval)."""
    return make_client(reload_interval_s=3600.0)


def test_the_poll_forgets_the_users_cached_states(client: TestClient) -> None:
    services = client.app.state.services  # type: ignore[attr-defined]
    model = services.holder.get("mult-vae")
    user_context(model, "u5", services.recommender.logs, services.cache)
    assert services.cache.get("u5", "mult-vae", "1") is not None
    erase_users(services.sessions, ["u5"])
    assert client.app.state.erasures.refresh() == 1  # type: ignore[attr-defined]
    assert services.cache.get("u5", "mult-vae", "1") is None
    assert "u5" in services.erased


def test_erasing_again_forgets_the_states_cached_since_the_first_erasure(
    client: TestClient,
) -> None:
    services = client.app.state.services  # type: ignore[attr-defined]
    model = services.holder.get("mult-vae")
    sync = client.app.state.erasures  # type: ignore[attr-defined]
    erase_users(services.sessions, ["u7"])
    sync.refresh()
    first = services.erased.get("u7")
    assert (
        client.post("/v1/interactions", json={"user_id": "u7", "item_id": "4"}).status_code == 201
    )
    user_context(model, "u7", services.recommender.logs, services.cache)  # folded in, cached
    key = cache_key("u7", first)
    assert services.cache.get(key, "mult-vae", "1") is not None
    erase_users(services.sessions, ["u7"])
    assert sync.refresh() == 1
    assert services.cache.get(key, "mult-vae", "1") is None


class _DownAtStart:
    """A sessionmaker whose first session fails: the database is unreachable at start-up."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        self.calls = 0

    def __call__(self) -> Session:
        self.calls += 1
        if self.calls == 1:
            raise OperationalError("SELECT erased_users", {}, Exception("connection refused"))
        return self.sessions()


class _QueuedImpression:
    """The impressions queue of a server: one list it showed ``u1`` before the erasure,
    written to the table at the next flush."""

    def __init__(self, sessions: sessionmaker[Session], shown_at: datetime) -> None:
        self.sessions = sessions
        self.shown_at = shown_at

    def flush(self) -> None:
        row = NewImpression("r1", "u1", "user", ["1", "2"], "mult-vae", "1", self.shown_at)
        with session_scope(self.sessions) as session:
            insert_impressions(session, [row])


def test_a_server_whose_first_read_failed_cleans_up_after_the_erasures_made_meanwhile(
    sessions: sessionmaker[Session],
) -> None:
    """The database is down when the server starts, so its first read of the erasures
    fails; the server serves on, caching ``u1``'s state and queueing a list shown to them.
    ``u1`` is erased (by another server), and this server's next read, the first that
    succeeds, must drop the cached state and delete the list: it only recorded, as a
    start-up read does, and both lingered."""
    shown_at = datetime.now(UTC)
    cache = MemoryCache(Metrics())
    erased = ErasedUsers()
    queue = _QueuedImpression(sessions, shown_at)
    sync = ErasureSync(
        _DownAtStart(sessions),  # type: ignore[arg-type]
        erased,
        cache,
        interval_s=3600,
        impressions=queue,  # type: ignore[arg-type]
    )
    sync.start()
    try:
        assert len(erased) == 0  # the read failed
        cache.set("u1", "mult-vae", "1", np.ones(4, dtype=np.float32), 0)  # serving meanwhile
        erase_users(sessions, ["u1"])
        assert sync.refresh() == 1 and "u1" in erased
        assert cache.get("u1", "mult-vae", "1") is None
        with session_scope(sessions) as session:
            assert session.scalars(select(Impression.id)).all() == []
    finally:
        sync.stop()


def test_a_start_up_read_only_records(sessions: sessionmaker[Session]) -> None:
    """A read at start-up finds nothing of the erased users in the fresh process: it
    records them, and deletes nothing (the running servers did at their polls)."""
    erase_users(sessions, ["u1"])
    queue = _QueuedImpression(sessions, datetime.now(UTC) - timedelta(days=1))
    queue.flush()  # a list shown before the erasure, written by a server after it
    erased = ErasedUsers()
    sync = ErasureSync(sessions, erased, MemoryCache(Metrics()), interval_s=3600)
    sync.start()
    try:
        assert "u1" in erased
        with session_scope(sessions) as session:
            assert session.scalars(select(Impression.id)).all() == ["r1"]
    finally:
        sync.stop()


class _ForgetFailsOnce(MemoryCache):
    """A cache whose first ``forget`` fails: it raises (``raises``: not a database error,
    the poll had recorded the erasure but not yet dropped the user's states nor noted
    their impressions), or cannot reach Redis, drops nothing and says so."""

    def __init__(self, raises: bool) -> None:
        super().__init__(Metrics())
        self.failures = 1
        self.raises = raises

    def forget(self, user_ids: Sequence[str]) -> bool:
        if self.failures:
            self.failures -= 1
            if self.raises:
                raise RuntimeError("cache client bug")
            return False
        return super().forget(user_ids)


def test_a_poll_that_failed_midway_forgets_and_deletes_at_the_next_one(
    sessions: sessionmaker[Session],
) -> None:
    """``ErasedUsers.update`` records the erasure, then the poll drops the user's cached
    states and notes their late impressions for deletion. An exception between the two
    (logged, the poll thread survives) left the erasure recorded, so the next poll found
    nothing new: the states stayed cached (in Redis until their TTL) and the impressions
    in the table. Both are now kept until done, like the impressions still to delete."""
    cache = _ForgetFailsOnce(raises=True)
    erased = ErasedUsers()
    queue = _QueuedImpression(sessions, datetime.now(UTC))
    sync = ErasureSync(
        sessions,
        erased,
        cache,
        interval_s=3600,
        impressions=queue,  # type: ignore[arg-type]
    )
    sync.start()
    try:
        cache.set("u1", "mult-vae", "1", np.ones(4, dtype=np.float32), 0)  # served before
        erase_users(sessions, ["u1"])
        assert sync.apply_now() is False and "u1" in erased  # recorded, not cleaned up
        assert cache.get("u1", "mult-vae", "1") is not None
        assert sync.apply_now() is True  # the next poll
        assert cache.get("u1", "mult-vae", "1") is None
        with session_scope(sessions) as session:
            assert session.scalars(select(Impression.id)).all() == []
    finally:
        sync.stop()


def test_states_the_cache_could_not_drop_are_dropped_at_the_next_poll(
    sessions: sessionmaker[Session],
) -> None:
    """Redis failing (or its breaker open) when the poll drops an erased user's states:
    ``forget`` swallowed it, and the states stayed in Redis until their TTL while the
    poll counted them dropped. They are kept to drop, and the poll says it is not done."""
    cache = _ForgetFailsOnce(raises=False)
    erased = ErasedUsers()
    sync = ErasureSync(sessions, erased, cache, interval_s=3600)
    sync.start()
    try:
        cache.set("u1", "mult-vae", "1", np.ones(4, dtype=np.float32), 0)
        erase_users(sessions, ["u1"])
        assert sync.apply_now() is False and "u1" in erased
        assert cache.get("u1", "mult-vae", "1") is not None  # not dropped, as said
        assert sync.apply_now() is True  # the next poll
        assert cache.get("u1", "mult-vae", "1") is None
    finally:
        sync.stop()
