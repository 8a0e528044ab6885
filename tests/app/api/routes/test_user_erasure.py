"""DELETE /v1/users/{user_id}: admin auth, id validation, the rows deleted per table (and
nobody else's), idempotence; then no answer uses the erased data: a trained user is served
as a user with no training history (fold-in from what they log afterwards, else the
popularity fallback) on the answering server and on another replica sharing the database
(and Redis). On SQLite and on the real Postgres.

The tiny store's default model (mult-vae) knows users ``u0`` .. ``u39`` (12 training items
each) and items ``0`` .. ``59``; its version was trained from files, so it predates every
erasure (``app.serving.erased``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.core.db import make_engine, make_sessionmaker, session_scope, upgrade_database
from app.db_models import ErasedUser, Impression, Interaction
from app.repository import NewImpression, as_utc, insert_impressions
from app.serving.erased import CLOCK_MARGIN
from models_store import ModelStore

TOKEN = "erasure-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
N_ITEMS = 60


@pytest.fixture
def database(blank_database_url: str) -> Iterator[tuple[str, sessionmaker[Session]]]:
    """This test's migrated database (SQLite file or scratch Postgres) and sessions on it,
    set up before the clients so that it is dropped after they close."""
    upgrade_database(blank_database_url)
    engine = make_engine(blank_database_url)
    yield blank_database_url, make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def make_admin(
    database: tuple[str, sessionmaker[Session]], make_client: Callable[..., TestClient]
) -> Callable[..., TestClient]:
    """``make_admin(**settings)``: a server with the admin token on this test's database."""

    def factory(**overrides: Any) -> TestClient:
        return make_client(**{"admin_token": TOKEN, "database_url": database[0], **overrides})

    return factory


def _log(client: TestClient, user: str, *items: str) -> None:
    events = [{"user_id": user, "item_id": item, "rating": 5} for item in items]
    r = client.post("/v1/interactions", json={"interactions": events})
    assert r.status_code == 201, r.text


def _counts(sessions: sessionmaker[Session], user: str) -> tuple[int, int]:
    with session_scope(sessions) as session:
        logged = session.execute(
            select(func.count()).select_from(Interaction).where(Interaction.user_id == user)
        ).scalar_one()
        shown = session.execute(
            select(func.count()).select_from(Impression).where(Impression.user_id == user)
        ).scalar_one()
    return int(logged), int(shown)


def _show(sessions: sessionmaker[Session], user: str, n: int) -> None:
    """``n`` impressions of ``user`` (written directly: the recorder writes them later)."""
    now = datetime.now(UTC)
    rows = [
        NewImpression(f"{user}-{k}", user, "user", ["1", "2"], "mult-vae", "1", now)
        for k in range(n)
    ]
    with session_scope(sessions) as session:
        insert_impressions(session, rows)


def _erase(client: TestClient, user: str) -> dict[str, Any]:
    r = client.delete(f"/v1/users/{user}", headers=AUTH)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _list(client: TestClient, user: str, **params: Any) -> dict[str, Any]:
    r = client.get(f"/v1/users/{user}/recommendations", params={"k": N_ITEMS, **params})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _ids(body: dict[str, Any]) -> list[str]:
    return [item["item_id"] for item in body["items"]]


# --------------------------------------------------------------------------- the route


def test_erasure_needs_the_admin_token(
    make_admin: Callable[..., TestClient], database: tuple[str, sessionmaker[Session]]
) -> None:
    client = make_admin()
    _log(client, "x1", "1", "2")
    assert client.delete("/v1/users/x1").status_code == 401
    wrong = client.delete("/v1/users/x1", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    disabled = make_admin(admin_token=None)
    r = disabled.delete("/v1/users/x1", headers=AUTH)
    assert (r.status_code, r.json()["error"]) == (403, "admin_disabled")
    assert _counts(database[1], "x1") == (2, 0)  # nothing was erased


def test_a_bad_id_is_a_422_and_erases_nothing(
    make_admin: Callable[..., TestClient], database: tuple[str, sessionmaker[Session]]
) -> None:
    client = make_admin()
    r = client.delete(f"/v1/users/{'x' * 300}", headers=AUTH)
    assert (r.status_code, r.json()["error"]) == (422, "invalid_id")
    assert r.json()["message"] == "user_id is 300 characters long; the limit is 256"
    r = client.delete("/v1/users/a%00b", headers=AUTH)
    assert r.status_code == 422, r.text
    r = client.delete("/v1/users/%20", headers=AUTH)
    assert (r.status_code, r.json()["error"]) == (422, "invalid_id")
    with session_scope(database[1]) as session:
        assert session.execute(select(func.count()).select_from(ErasedUser)).scalar_one() == 0


def test_erasure_deletes_the_users_rows_and_says_how_many(
    make_admin: Callable[..., TestClient], database: tuple[str, sessionmaker[Session]]
) -> None:
    client = make_admin()
    sessions = database[1]
    _log(client, "team/alice", "1", "2", "3")
    _log(client, "bob", "1", "4")
    _show(sessions, "team/alice", 2)
    _show(sessions, "bob", 1)
    body = _erase(client, "team/alice")
    assert body["user_id"] == "team/alice"
    assert body["refresh_pending"] is False  # this server applied it before answering
    assert body["deleted"] == {"interactions": 3, "impressions": 2}
    assert datetime.fromisoformat(body["erased_at"]) <= datetime.now(UTC)
    assert _counts(sessions, "team/alice") == (0, 0)
    assert _counts(sessions, "bob") == (2, 1)  # nobody else's rows
    again = _erase(client, "team/alice")  # nothing left: zero counts, still 200
    assert again["deleted"] == {"interactions": 0, "impressions": 0}
    assert again["erased_at"] > body["erased_at"]
    unknown = _erase(client, "never-seen")
    assert unknown["deleted"] == {"interactions": 0, "impressions": 0}
    with session_scope(sessions) as session:
        erased = dict(session.execute(select(ErasedUser.user_id, ErasedUser.epoch)).all())
    assert erased == {"team/alice": 2, "never-seen": 3}  # one epoch per erasure, in order


# --------------------------------------------------------------------------- serving


def test_a_trained_user_is_served_as_unknown_after_erasure(
    make_admin: Callable[..., TestClient], seen_items: Callable[[str], set[str]]
) -> None:
    client = make_admin()
    trained = seen_items("u1")
    body = {"model": "biased-mf", "item_ids": sorted(trained)[:3]}

    def predicted(user: str) -> list[dict[str, Any]]:
        r = client.post("/v1/predictions", json={**body, "user_id": user})
        assert r.status_code == 200, r.text
        ratings: list[dict[str, Any]] = r.json()["predictions"]
        return ratings

    assert predicted("u1") != predicted("nobody")
    before = _list(client, "u1")
    assert not before["fallback"] and not trained & set(_ids(before))
    assert len(_ids(before)) == N_ITEMS - len(trained)
    _erase(client, "u1")
    after = _list(client, "u1")
    # No training history: the popularity fallback, its training items not excluded.
    assert after["fallback"] and set(_ids(after)) == {str(i) for i in range(N_ITEMS)}
    assert _ids(after) == _ids(_list(client, "nobody"))
    # Predictions (a rating model) no longer come from the user's trained state either:
    # the version's training mean, as for a user it never saw.
    assert predicted("u1") == predicted("nobody")


def test_interactions_after_the_erasure_fold_in(
    make_admin: Callable[..., TestClient], seen_items: Callable[[str], set[str]]
) -> None:
    client = make_admin()
    trained = sorted(seen_items("u2"))
    _log(client, "u2", "0", "2")  # before the erasure: erased with the rest
    _erase(client, "u2")
    new = [trained[0], "5" if "5" not in trained else "7"]
    _log(client, "u2", *new)
    after = _list(client, "u2")
    assert not after["fallback"]  # folded in from what was logged since
    listed = set(_ids(after))
    assert not listed & set(new)  # the new interactions are seen
    assert listed == {str(i) for i in range(N_ITEMS)} - set(new)  # nothing else is
    # A fold-in of the same history as an anonymous one: the same list.
    ad_hoc = client.post(
        "/v1/recommendations",
        json={"history": [{"item_id": i, "rating": 5} for i in new], "k": N_ITEMS},
    )
    assert ad_hoc.status_code == 200, ad_hoc.text
    assert _ids(ad_hoc.json()) == _ids(after)


def _wait_for(check: Callable[[], bool]) -> bool:
    """``check()`` until true, for at most 10 s (another replica's poll runs every 50 ms)."""
    deadline = time.monotonic() + 10
    while not check() and time.monotonic() < deadline:
        time.sleep(0.05)
    return check()


def test_another_replica_forgets_the_user_at_its_poll(
    make_admin: Callable[..., TestClient],
    seen_items: Callable[[str], set[str]],
    redis_url: str,
    redis_namespace: str,
) -> None:
    """Two servers on one database and one Redis: the one that did not answer the erasure
    stops serving the user's trained and cached state (memory tier and Redis)."""
    import redis

    shared = {"redis_url": redis_url, "cache_namespace": redis_namespace}
    writer, reader = make_admin(**shared), make_admin(**shared)
    _log(reader, "u3", "1", "3")  # a fold-in state, cached in the reader's memory and Redis
    before = _list(reader, "u3")
    assert not before["fallback"] and not {"1", "3"} & set(_ids(before))
    key = f"{redis_namespace}:state:u3"
    r = redis.Redis.from_url(redis_url)
    assert _wait_for(lambda: bool(r.exists(key)))  # the write-behind reached Redis
    _erase(writer, "u3")
    assert not r.exists(key)  # the answering server deleted it before answering
    assert _wait_for(lambda: _list(reader, "u3")["fallback"])
    assert set(_ids(_list(reader, "u3"))) == {str(i) for i in range(N_ITEMS)}
    # A server started afterwards finds nothing of the user either.
    late = make_admin(**shared)
    assert _list(late, "u3")["fallback"]
    r.close()


def test_retraining_reads_nothing_of_the_erased_user(
    make_admin: Callable[..., TestClient], database: tuple[str, sessionmaker[Session]]
) -> None:
    """The next version is trained from the log (``training.data.log_reader``): the erased
    rows are gone from it; what the user logs afterwards is new data and is read."""
    from training.data.log_reader import read_interaction_log

    client = make_admin()
    _log(client, "gone", "1", "2")
    _log(client, "stays", "3")
    _erase(client, "gone")
    assert set(read_interaction_log(database[0]).user_ids.ids) == {"stays"}
    _log(client, "gone", "4")
    data = read_interaction_log(database[0])
    assert set(data.user_ids.ids) == {"stays", "gone"} and len(data) == 2


@pytest.mark.parametrize("failing", ["erasures_since", "delete_impressions_until"])
def test_an_erasure_this_server_could_not_apply_says_so(
    make_admin: Callable[..., TestClient],
    database: tuple[str, sessionmaker[Session]],
    monkeypatch: pytest.MonkeyPatch,
    failing: str,
) -> None:
    """The answering server applies the erasure before answering (its poll of
    ``erased_users``, then its delete of the user's late impressions). When that failed
    after the commit (logged, nothing raised) the answer was the same 200 as a complete
    erasure, while this server went on serving the user's trained state. The erasure is
    committed, so it stays a 200, with ``refresh_pending`` true; the next poll applies it."""
    from sqlalchemy.exc import OperationalError

    import app.users.sync as sync_module

    client = make_admin()
    assert not _list(client, "u3")["fallback"]  # served from their trained state

    def down(*args: object, **kwargs: object) -> None:
        raise OperationalError("SELECT 1", {}, Exception("connection lost"))

    real = getattr(sync_module, failing)
    monkeypatch.setattr(sync_module, failing, down)
    r = client.delete("/v1/users/u3", headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json()["refresh_pending"] is True
    assert _counts(database[1], "u3") == (0, 0)  # the committed part: the rows are gone
    if failing == "erasures_since":  # not read here: still served as before, as said
        assert not _list(client, "u3")["fallback"]
    monkeypatch.setattr(sync_module, failing, real)
    client.app.state.erasures.refresh()  # type: ignore[attr-defined]  # the next poll
    assert _list(client, "u3")["fallback"]
    assert _erase(client, "u3")["refresh_pending"] is False


def test_an_unreachable_database_is_a_503(make_client: Callable[..., TestClient]) -> None:
    client = make_client(database_url="postgresql://postgres@127.0.0.1:1/genrec", admin_token=TOKEN)
    r = client.delete("/v1/users/u1", headers=AUTH)
    assert (r.status_code, r.json()["error"]) == (503, "database_unavailable")


def test_impressions_queued_before_the_erasure_are_deleted_too(
    make_admin: Callable[..., TestClient], database: tuple[str, sessionmaker[Session]]
) -> None:
    """Impressions are written after the response, in batches: a list another server showed
    the user before the erasure can reach the table after it. That server writes its queue
    and deletes them at its poll; the answering server writes its own first and counts them."""
    sessions = database[1]
    writer = make_admin(impression_flush_s=3600.0)  # nothing is written until a flush
    reader = make_admin(impression_flush_s=3600.0)
    _list(writer, "u6")
    _list(reader, "u6")
    assert _counts(sessions, "u6") == (0, 0)  # both still queued
    assert _erase(writer, "u6")["deleted"] == {"interactions": 0, "impressions": 1}
    assert _wait_for(lambda: _list(reader, "u6")["fallback"])  # the reader polled
    reader.app.state.erasures.refresh()  # type: ignore[attr-defined]  # (its poll is done)
    reader.app.state.services.impressions.flush()  # type: ignore[attr-defined]
    writer.app.state.services.impressions.flush()  # type: ignore[attr-defined]
    # Only the lists shown after the erasure: the reader's fallback lists (and the one
    # the writer showed after it) remain, none from before.
    with session_scope(sessions) as session:
        kept = session.scalars(select(Impression.created_at).where(Impression.user_id == "u6"))
        erased_at = session.scalars(select(ErasedUser.erased_at)).one()
        assert all(as_utc(moment) > as_utc(erased_at) for moment in kept)


def test_a_version_trained_after_the_erasure_serves_the_user_as_it_knows_them(
    make_admin: Callable[..., TestClient], store_dir: Path, seen_items: Callable[[str], set[str]]
) -> None:
    """A retrain job's version on the log alone whose cutoff (when it read the log) is past
    the erasure and the clocks' margin holds only what the user logged since: it serves the
    user from its training row again (here the tiny data, standing in for that log)."""
    from tests.app.conftest import TINY_MODELS, tiny_interactions
    from training.pipeline import save_trained, train_model

    client = make_admin()
    _erase(client, "u1")
    assert _list(client, "u1", model="ease")["fallback"]
    data = tiny_interactions()
    read_at = datetime.now(UTC) + CLOCK_MARGIN + timedelta(minutes=1)
    manifest = save_trained(
        ModelStore(store_dir),
        "ease",
        train_model("ease", data, dict(TINY_MODELS["ease"])),
        data,
        "log",
        log_read_at=read_at,
        training={"job_id": 1, "attempt": 1},
    )
    promoted = client.post(
        "/admin/models/ease/promote", json={"version": manifest.version}, headers=AUTH
    )
    assert promoted.status_code == 200, promoted.text
    assert _wait_for(lambda: _list(client, "u1", model="ease")["version"] == manifest.version)
    served = _list(client, "u1", model="ease")
    assert not served["fallback"] and not seen_items("u1") & set(_ids(served))
