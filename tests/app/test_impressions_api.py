"""Impressions, typed feedback and attribution through the HTTP API, on the real
Postgres and Redis: every list carries a recommendation_id, its impression is written
and survives a graceful shutdown, events are attributed by id and by window (injected
clock), bad input is a clear 4xx or documented behaviour, exclude_recently_shown works."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select

from app.db_models import Impression, Interaction
from app.main import create_app
from tests.app.conftest import embedded_settings
from tests.manual_clock import ManualClock

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _uid() -> str:
    return f"imp-{uuid.uuid4().hex[:8]}"


@pytest.fixture(params=["postgres", "sqlite"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, object]:
    """Postgres + Redis (production), or embedded (SQLite file + in-process cache)."""
    if request.param == "sqlite":
        return {"database_url": f"sqlite:///{tmp_path}/impressions.db", "redis_url": None}
    return {
        "database_url": request.getfixturevalue("postgres_url"),
        "redis_url": request.getfixturevalue("redis_url"),
        "cache_namespace": request.getfixturevalue("redis_namespace"),
    }


@pytest.fixture
def db_url(backend: dict[str, object]) -> str:
    """The database the test's client uses."""
    return str(backend["database_url"])


@pytest.fixture
def pg_client(make_client: Callable[..., TestClient], backend: dict[str, object]) -> TestClient:
    return make_client(**backend, attribution_window_minutes=30)


def _services(client: TestClient):  # type: ignore[no-untyped-def]
    return client.app.state.services  # type: ignore[attr-defined]


def _impression(url: str, rec_id: str) -> Impression | None:
    """The impression as another connection sees it (committed rows only)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            row = conn.execute(select(Impression).where(Impression.id == rec_id)).first()
            return None if row is None else Impression(**row._mapping)
    finally:
        engine.dispose()


def _logged(url: str, user_id: str) -> list[Interaction]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            query = select(Interaction).where(Interaction.user_id == user_id)
            rows = conn.execute(query.order_by(Interaction.id)).all()
            return [Interaction(**r._mapping) for r in rows]
    finally:
        engine.dispose()


def test_every_list_carries_a_recommendation_id_whose_impression_is_written(
    pg_client: TestClient, db_url: str
) -> None:
    user = "u3"
    for_user = pg_client.get(f"/v1/users/{user}/recommendations", params={"k": 4}).json()
    ad_hoc = pg_client.post(
        "/v1/recommendations", json={"history": [{"item_id": "2"}], "k": 3, "user_id": "s-1"}
    ).json()
    similar = pg_client.get("/v1/items/2/similar", params={"k": 3}).json()
    _services(pg_client).impressions.flush()
    for answer, who, kind in (
        (for_user, user, "user"),
        (ad_hoc, "s-1", "ad_hoc"),
        (similar, None, "similar"),
    ):
        row = _impression(db_url, answer["recommendation_id"])
        assert row is not None
        assert row.items == [i["item_id"] for i in answer["items"]]
        assert (row.user_id, row.kind, row.model) == (who, kind, answer["model"])
        assert row.version == answer["version"]


def test_impressions_survive_a_graceful_shutdown(
    store_dir: Path, db_url: str, backend: dict[str, object]
) -> None:
    settings = embedded_settings(
        **backend,
        store_dir=store_dir,
        impression_flush_s=60,  # the writer holds its batch open until shutdown
        impression_batch_max=1000,
    )
    client = TestClient(create_app(settings), raise_server_exceptions=False)
    with client:
        ids = [
            client.get(f"/v1/users/u{n}/recommendations", params={"k": 3}).json()[
                "recommendation_id"
            ]
            for n in range(5)
        ]
        assert all(_impression(db_url, i) is None for i in ids)  # still queued
    assert all(_impression(db_url, i) is not None for i in ids)


def test_impressions_off_still_gives_ids_but_records_nothing(
    make_client: Callable[..., TestClient], db_url: str
) -> None:
    client = make_client(database_url=db_url, impressions=False)
    answer = client.get("/v1/users/u1/recommendations", params={"k": 3}).json()
    _services(client).impressions.flush()
    assert len(answer["recommendation_id"]) == 36
    assert _impression(db_url, answer["recommendation_id"]) is None


def test_an_event_naming_its_recommendation_id_is_attributed_to_it(
    pg_client: TestClient, db_url: str
) -> None:
    user = _uid()
    answer = pg_client.get(f"/v1/users/{user}/recommendations", params={"k": 3}).json()
    item = answer["items"][0]["item_id"]
    # Not yet written (still queued on this replica) is enough to attribute.
    r = pg_client.post(
        "/v1/interactions",
        json={
            "user_id": user,
            "item_id": item,
            "type": "click",
            "recommendation_id": answer["recommendation_id"],
        },
    )
    assert r.status_code == 201
    _services(pg_client).impressions.flush()
    r = pg_client.post(
        "/v1/interactions",
        json={
            "user_id": user,
            "item_id": item,
            "type": "dislike",  # negative events are attributed when they name the impression
            "recommendation_id": answer["recommendation_id"],
        },
    )
    assert r.status_code == 201
    logged = _logged(db_url, user)
    assert [(e.type, e.impression_id) for e in logged] == [
        ("click", answer["recommendation_id"]),
        ("dislike", answer["recommendation_id"]),
    ]


def test_an_unknown_recommendation_id_is_accepted_logged_and_left_unattributed(
    pg_client: TestClient, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An id no list answers yet is a debug line, not a warning: behind a balancer it is
    most often a list still queued on another replica, attributed late once written."""
    user = _uid()
    with caplog.at_level(logging.DEBUG, logger="app.serving.attribution"):
        r = pg_client.post(
            "/v1/interactions",
            json={"user_id": user, "item_id": "3", "recommendation_id": "no-such-impression"},
        )
    assert r.status_code == 201 and r.json() == {"accepted": 1}
    [event] = _logged(db_url, user)
    assert (event.recommendation_id, event.impression_id) == ("no-such-impression", None)
    [line] = [r for r in caplog.records if "no-such-impression" in r.getMessage()]
    assert line.levelno == logging.DEBUG and "unattributed" in line.getMessage()


def test_an_event_naming_another_users_list_is_accepted_and_left_unattributed(
    pg_client: TestClient, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A ``recommendation_id`` is no credential: user B's event naming user A's list is
    logged as sent, unattributed, with a warning and a count; A's own event and a
    session's list named by a user who logged in since are attributed."""
    owner, other = _uid(), _uid()
    answer = pg_client.get(f"/v1/users/{owner}/recommendations", params={"k": 3}).json()
    rec_id, item = answer["recommendation_id"], answer["items"][0]["item_id"]
    body = {"history": [{"item_id": "1"}], "k": 3, "session_id": _uid()}
    session = pg_client.post("/v1/recommendations", json=body).json()

    def log(user: str, named: dict[str, object]) -> None:
        event = {"user_id": user, "item_id": named["items"][0]["item_id"],  # type: ignore[index]
                 "type": "click", "recommendation_id": named["recommendation_id"]}  # fmt: skip
        r = pg_client.post("/v1/interactions", json=event)
        assert r.status_code == 201 and r.json() == {"accepted": 1}

    with caplog.at_level(logging.WARNING, logger="app.serving.attribution"):
        log(other, answer)  # still queued on this replica
        _services(pg_client).impressions.flush()
        log(other, answer)  # written
    log(owner, answer)
    log(other, session)
    logged = [(e.recommendation_id, e.impression_id) for e in _logged(db_url, other)]
    assert logged == [(rec_id, None), (rec_id, None), (session["recommendation_id"],) * 2]
    assert [(e.item_id, e.impression_id) for e in _logged(db_url, owner)] == [(item, rec_id)]
    assert caplog.text.count(f"a list of user '{owner}'") == 2
    metrics = pg_client.get("/metrics").text
    assert 'genrec_attribution_refused_total{reason="other_user"} 2.0' in metrics


def test_positive_events_are_attributed_by_window_to_the_latest_impression(
    pg_client: TestClient, db_url: str
) -> None:
    services = _services(pg_client)
    clock = ManualClock(T0)
    services.impressions.clock = clock
    services.interactions.clock = clock
    user = _uid()

    def shown() -> tuple[str, list[str]]:
        answer = pg_client.get(f"/v1/users/{user}/recommendations", params={"k": 5}).json()
        return answer["recommendation_id"], [i["item_id"] for i in answer["items"]]

    first, items = shown()
    item = items[0]
    clock.advance(timedelta(minutes=5))
    second, again = shown()  # nothing logged in between: the same list, a newer impression
    assert item in again
    services.impressions.flush()
    clock.advance(timedelta(minutes=10))

    def log(item_id: str, **fields: object) -> None:
        body = {"user_id": user, "item_id": item_id, **fields}
        assert pg_client.post("/v1/interactions", json=body).status_code == 201

    log(item, type="click")  # 15 and 10 minutes after the two impressions: the latest
    log(item, type="dislike")  # negative: only explicit attribution
    log("not-shown", type="like")  # never shown to this user
    # before both by more than the clocks' tolerance (a minute): no list answers it
    log(item, type="purchase", timestamp=(T0 - timedelta(minutes=2)).isoformat())
    # 30 s before the first list by the client's clock: skew, or an event the client
    # sends late that happened before any list showed the item; the times cannot
    # tell, so no list served after it answers it (its recommendation_id would)
    log(item, type="like", timestamp=(T0 - timedelta(seconds=30)).isoformat())
    clock.advance(timedelta(minutes=26))  # 31 minutes after the newest impression
    log(item, type="click")
    log(item)  # untyped is positive too, but out of the window as well
    events = [(e.type, e.item_id, e.impression_id) for e in _logged(db_url, user)]
    assert events == [
        ("click", item, second),
        ("dislike", item, None),
        ("like", "not-shown", None),
        ("purchase", item, None),
        ("like", item, None),
        ("click", item, None),
        (None, item, None),
    ]
    assert first != second


def test_an_unknown_event_type_is_a_422_naming_it(pg_client: TestClient, db_url: str) -> None:
    user = _uid()
    r = pg_client.post(
        "/v1/interactions",
        json={
            "interactions": [
                {"user_id": user, "item_id": "1", "type": "click"},
                {"user_id": user, "item_id": "2", "type": "wishlist"},
            ]
        },
    )
    assert r.status_code == 422
    body = r.json()
    assert body["error"] == "unknown_event_type"
    assert "interactions[1].type 'wishlist'" in body["message"] and "click" in body["message"]
    assert _logged(db_url, user) == []  # all or nothing


def test_the_event_vocabulary_is_configurable(
    make_client: Callable[..., TestClient], db_url: str
) -> None:
    client = make_client(database_url=db_url, event_types={"wishlist": 1.5})
    user = _uid()
    ok = {"user_id": user, "item_id": "1", "type": "wishlist"}
    assert client.post("/v1/interactions", json=ok).status_code == 201
    r = client.post("/v1/interactions", json={**ok, "type": "click"})
    assert r.status_code == 422 and "'click'" in r.json()["message"]


def test_exclude_recently_shown_drops_the_last_n_impressions_items(
    pg_client: TestClient,
) -> None:
    user = "u7"
    url = f"/v1/users/{user}/recommendations"
    first = [i["item_id"] for i in pg_client.get(url, params={"k": 4}).json()["items"]]
    second = pg_client.get(url, params={"k": 4, "exclude_recently_shown": 1}).json()
    second_items = [i["item_id"] for i in second["items"]]
    assert len(second_items) == 4 and not set(first) & set(second_items)
    _services(pg_client).impressions.flush()  # now from the database, not the queue
    third = pg_client.get(url, params={"k": 4, "exclude_recently_shown": 2}).json()
    third_items = {i["item_id"] for i in third["items"]}
    assert not third_items & (set(first) | set(second_items))
    # N=1 looks only at the newest impression (the third list)
    fourth = pg_client.get(url, params={"k": 4, "exclude_recently_shown": 1}).json()
    assert not {i["item_id"] for i in fourth["items"]} & third_items
    assert set(first) & {i["item_id"] for i in fourth["items"]}  # first is shown again


def test_a_session_list_is_not_the_list_of_the_user_with_the_same_id(
    pg_client: TestClient, db_url: str
) -> None:
    """An ad-hoc request's ``session_id`` is not a user id: its impression records it as the
    session, so the user with the same id string does not have the session's items
    excluded as recently shown, and that user's clicks are not credited to it by window."""
    services = _services(pg_client)
    same = _uid()
    body = {"history": [{"item_id": "1"}], "k": 5, "session_id": same}
    session = pg_client.post("/v1/recommendations", json=body).json()
    shown = [i["item_id"] for i in session["items"]]
    assert services.impressions.recent_items(same, 1) == set()  # still queued
    click = {"user_id": same, "item_id": shown[0], "type": "click"}
    assert pg_client.post("/v1/interactions", json=click).status_code == 201
    services.impressions.flush()
    row = _impression(db_url, session["recommendation_id"])
    assert row is not None
    assert (row.user_id, row.session_id, row.kind) == (None, same, "ad_hoc")
    assert pg_client.post("/v1/interactions", json=click).status_code == 201  # written now
    named = {**click, "recommendation_id": session["recommendation_id"]}
    assert pg_client.post("/v1/interactions", json=named).status_code == 201
    events = [e.impression_id for e in _logged(db_url, same)]
    assert events == [None, None, session["recommendation_id"]]  # only by its id
    everything = {"k": 60, "exclude_seen": False, "exclude_recently_shown": 1}
    listed = pg_client.get(f"/v1/users/{same}/recommendations", params=everything).json()
    assert set(shown) <= {i["item_id"] for i in listed["items"]}


def test_exclude_recently_shown_in_the_ad_hoc_body_needs_a_user_id(
    pg_client: TestClient,
) -> None:
    body = {"history": [{"item_id": "2"}], "k": 4, "user_id": _uid()}
    first = pg_client.post("/v1/recommendations", json=body).json()
    again = pg_client.post("/v1/recommendations", json={**body, "exclude_recently_shown": 1}).json()
    assert not {i["item_id"] for i in first["items"]} & {i["item_id"] for i in again["items"]}
    r = pg_client.post("/v1/recommendations", json={"history": [], "exclude_recently_shown": 1})
    assert r.status_code == 422 and "needs user_id" in r.json()["message"]


@pytest.mark.parametrize("value", ["-1", "101", "x"])
def test_exclude_recently_shown_out_of_range_is_a_422(pg_client: TestClient, value: str) -> None:
    r = pg_client.get("/v1/users/u1/recommendations", params={"exclude_recently_shown": value})
    assert r.status_code == 422 and "exclude_recently_shown" in r.text
