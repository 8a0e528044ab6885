"""Two replicas (two ``create_app`` services) on one Postgres database and one Redis: a
click that reaches replica B before replica A has written the list it names is
attributed once A writes it, and counts once in its experiment; a click naming another
user's list, or an item the list did not show, stays unattributed. Also the race where
A writes the list (and looks for waiting clicks) between B's read and B's insert. The
same for clicks without an id, which the attribution window credits to the list."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from app.core.db import upgrade_database
from app.repository import NewInteraction
from app.serving.attribution import Attributed
from app.serving.late_attribution import DeferredRecheck

TOKEN = "late-attribution-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
EXPERIMENT = {
    "name": "late",
    "variants": [
        {"name": "control", "model": "popularity", "weight": 1},
        {"name": "ease", "model": "ease", "weight": 1},
    ],
}


def _clear_experiments(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:  # the session database is shared by the suite's tests
        conn.exec_driver_sql("DELETE FROM experiments")
        conn.exec_driver_sql("DELETE FROM impressions WHERE experiment IS NOT NULL")
    engine.dispose()


@pytest.fixture
def replicas(
    make_client: Callable[..., TestClient],
    postgres_url: str,
    redis_url: str,
    redis_namespace: str,
) -> Iterator[tuple[TestClient, TestClient]]:
    """Replica A and replica B; neither writes its impressions until told to
    (``flush``): an hour's flush interval stands for "not yet"."""
    upgrade_database(postgres_url)
    _clear_experiments(postgres_url)
    settings = {
        "database_url": postgres_url,
        "redis_url": redis_url,
        "cache_namespace": redis_namespace,
        "admin_token": TOKEN,
        "impression_flush_s": 3600.0,
    }
    yield make_client(**settings), make_client(**settings)
    _clear_experiments(postgres_url)


def _flush(replica: TestClient) -> None:
    replica.app.state.services.impressions.flush()  # type: ignore[attr-defined]


def _rechecks(replica: TestClient) -> DeferredRecheck:
    rechecks = replica.app.state.services.interactions.rechecks  # type: ignore[attr-defined]
    assert isinstance(rechecks, DeferredRecheck)
    return rechecks


def _recs(replica: TestClient, user: str) -> dict[str, Any]:
    response = replica.get(f"/v1/users/{user}/recommendations", params={"k": 5})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _click(user: str, item: str, rec_id: str) -> dict[str, Any]:
    return {"user_id": user, "item_id": item, "type": "click", "recommendation_id": rec_id}


def _attributions(url: str, rec_ids: Sequence[str]) -> list[tuple[str, str, str | None]]:
    """(user, item, impression_id) of every logged event naming one of ``rec_ids``."""
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT user_id, item_id, impression_id FROM interactions "
                "WHERE recommendation_id = ANY(:ids) ORDER BY id"
            ),
            {"ids": list(rec_ids)},
        )
        found = [(u, i, imp) for u, i, imp in rows]
    engine.dispose()
    return found


def _clicks(replica: TestClient) -> dict[str, int]:
    result = replica.get(f"/admin/experiments/{EXPERIMENT['name']}", headers=AUTH).json()
    return {v["name"]: v["clicks"] for v in result["variants"]}


def _metric(replica: TestClient, prefix: str) -> float:
    """The sum of the samples whose line starts with ``prefix``."""
    lines = replica.get("/metrics").text.splitlines()
    return sum(float(line.split()[-1]) for line in lines if line.startswith(prefix))


def test_a_click_before_the_list_is_written_is_attributed_once_it_is(
    replicas: tuple[TestClient, TestClient], postgres_url: str
) -> None:
    a, b = replicas
    assert a.post("/admin/experiments", json=EXPERIMENT, headers=AUTH).status_code == 201
    mine, owners = _recs(a, "u-late"), _recs(a, "u-owner")
    shown = mine["items"][0]["item_id"]
    not_shown = next(
        str(i) for i in range(100) if str(i) not in {x["item_id"] for x in mine["items"]}
    )
    clicks = [
        _click("u-late", shown, mine["recommendation_id"]),
        _click("u-late", not_shown, mine["recommendation_id"]),  # an item it did not show
        _click("u-late", owners["items"][0]["item_id"], owners["recommendation_id"]),  # not theirs
    ]
    assert b.post("/v1/interactions", json={"interactions": clicks}).status_code == 201
    rec_ids = [mine["recommendation_id"], owners["recommendation_id"]]
    assert [imp for _, _, imp in _attributions(postgres_url, rec_ids)] == [None, None, None]
    assert _metric(b, 'genrec_attribution_refused_total{reason="unknown"}') == 3.0

    _flush(a)  # A writes both lists, and with them attributes the click that waited

    assert _attributions(postgres_url, rec_ids) == [
        ("u-late", shown, mine["recommendation_id"]),
        ("u-late", not_shown, None),
        ("u-late", owners["items"][0]["item_id"], None),
    ]
    expected = {"control": 0, "ease": 0}
    expected[mine["variant"]] = 1
    assert _clicks(a) == expected and _clicks(b) == expected
    assert _metric(a, "genrec_attribution_late_total") == 1.0
    assert _metric(a, 'genrec_experiment_clicks_total{experiment="late"') == 1.0
    _flush(a)
    _flush(b)  # nothing is attributed, nor counted, twice
    assert _clicks(a) == expected
    assert _metric(a, "genrec_attribution_late_total") == 1.0
    assert _metric(b, "genrec_attribution_late_total") == 0.0


# ----------------------------------------------------------------- window attribution
# An event without a ``recommendation_id`` is attributed by the window: the latest list
# that showed its item to its user within the window before it. When that list is still
# queued on the replica that served it, the event's replica cannot see it either.


def _window_event(user: str, item: str, kind: str = "click", **extra: Any) -> dict[str, Any]:
    return {"user_id": user, "item_id": item, "type": kind, **extra}


def _window_attributions(url: str, user: str) -> list[tuple[str, str | None, str | None]]:
    """(item, type, impression_id) of every logged event of ``user`` without an id."""
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT item_id, type, impression_id FROM interactions "
                "WHERE user_id = :user AND recommendation_id IS NULL ORDER BY id"
            ),
            {"user": user},
        )
        found = [(i, k, imp) for i, k, imp in rows]
    engine.dispose()
    return found


def _clear_user(url: str, *users: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:  # the session database outlives one test
        conn.execute(text("DELETE FROM interactions WHERE user_id = ANY(:u)"), {"u": list(users)})
        conn.execute(text("DELETE FROM impressions WHERE user_id = ANY(:u)"), {"u": list(users)})
    engine.dispose()


def test_a_window_click_before_the_list_is_written_is_attributed_once_it_is(
    replicas: tuple[TestClient, TestClient], postgres_url: str
) -> None:
    """Clicks with no id reach B while the list that showed the item is queued on A:
    the one on a shown item is attributed when A writes the list, and counted once; one
    on an item the list did not show, a negative event, and one whose client timestamp
    is before the list (an event that happened before the list was served) are not."""
    a, b = replicas
    _clear_user(postgres_url, "u-window")
    assert a.post("/admin/experiments", json=EXPERIMENT, headers=AUTH).status_code == 201
    mine = _recs(a, "u-window")
    shown = [x["item_id"] for x in mine["items"]]
    not_shown = next(str(i) for i in range(100) if str(i) not in shown)
    events = [
        _window_event("u-window", shown[0]),
        _window_event("u-window", not_shown),
        _window_event("u-window", shown[1], "dislike"),
        _window_event("u-window", shown[2], timestamp="2026-01-01T00:00:00Z"),
    ]
    assert b.post("/v1/interactions", json={"interactions": events}).status_code == 201
    assert [imp for _, _, imp in _window_attributions(postgres_url, "u-window")] == [None] * 4

    _flush(a)  # A writes the list, and with it attributes the click that waited

    assert _window_attributions(postgres_url, "u-window") == [
        (shown[0], "click", mine["recommendation_id"]),
        (not_shown, "click", None),
        (shown[1], "dislike", None),
        (shown[2], "click", None),
    ]
    expected = {"control": 0, "ease": 0}
    expected[mine["variant"]] = 1
    assert _clicks(a) == expected and _clicks(b) == expected
    assert _metric(a, 'genrec_attribution_late_total{by="list_writer",rule="window"}') == 1.0
    assert _metric(a, 'genrec_experiment_clicks_total{experiment="late"') == 1.0
    _flush(a)
    _flush(b)  # nothing is attributed, nor counted, twice
    assert _clicks(a) == expected
    assert _metric(a, "genrec_attribution_late_total") == 1.0
    assert _metric(b, "genrec_attribution_late_total") == 0.0
    assert _metric(b, 'genrec_experiment_clicks_total{experiment="late"') == 0.0
    _clear_user(postgres_url, "u-window")


def test_a_window_click_attributed_at_log_time_is_not_moved_by_a_later_list(
    replicas: tuple[TestClient, TestClient], postgres_url: str
) -> None:
    """B attributes the click to B's written list; A then writes a list it served in
    between (later, and still before the click): attribution was decided once, and the
    click stays where it was, counted once."""
    a, b = replicas
    _clear_user(postgres_url, "u-moved")
    assert a.post("/admin/experiments", json=EXPERIMENT, headers=AUTH).status_code == 201
    older = _recs(b, "u-moved")
    _flush(b)
    newer = _recs(a, "u-moved")  # queued on A
    both = [x["item_id"] for x in older["items"] if x in newer["items"]]
    assert both, "the same user's two lists share an item"
    assert b.post("/v1/interactions", json=_window_event("u-moved", both[0])).status_code == 201
    assert _window_attributions(postgres_url, "u-moved") == [
        (both[0], "click", older["recommendation_id"])
    ]
    _flush(a)
    assert _window_attributions(postgres_url, "u-moved") == [
        (both[0], "click", older["recommendation_id"])
    ]
    assert _metric(a, "genrec_attribution_late_total") == 0.0
    _clear_user(postgres_url, "u-moved")


@pytest.mark.parametrize("rule", ["named", "window"])
def test_a_list_written_between_the_clicks_read_and_its_insert_is_not_missed(
    replicas: tuple[TestClient, TestClient], postgres_url: str, rule: str
) -> None:
    """B finds no list for a click (naming its ``recommendation_id``, or without one, for
    the window); A then commits the list and looks for waiting clicks before B's insert
    is in the database: B looks again after its insert."""
    a, b = replicas
    user = f"u-race-{rule}"
    _clear_user(postgres_url, user)
    assert a.post("/admin/experiments", json=EXPERIMENT, headers=AUTH).status_code == 201
    mine = _recs(a, user)
    attributor = b.app.state.services.interactions.attributor  # type: ignore[attr-defined]
    read = attributor.attribute

    def read_then_a_writes(db: Any, rows: Sequence[NewInteraction]) -> Attributed:
        found: Attributed = read(db, rows)
        _flush(a)  # A's write and its look for waiting clicks, before B's insert
        return found

    attributor.attribute = read_then_a_writes
    item = mine["items"][0]["item_id"]
    click = (
        _click(user, item, mine["recommendation_id"])
        if rule == "named"
        else _window_event(user, item)
    )
    assert b.post("/v1/interactions", json={"interactions": [click]}).status_code == 201
    assert _rechecks(b).drain()  # B's second look runs after the answer, on its thread
    assert _impressions_of(postgres_url, user) == [mine["recommendation_id"]]
    expected = {"control": 0, "ease": 0}
    expected[mine["variant"]] = 1
    assert _clicks(b) == expected
    late = f'genrec_attribution_late_total{{by="event_writer",rule="{rule}"}}'
    assert _metric(b, late) == 1.0
    assert _metric(a, "genrec_attribution_late_total") == 0.0
    assert _metric(b, 'genrec_experiment_clicks_total{experiment="late"') == 1.0
    _clear_user(postgres_url, user)


def _impressions_of(url: str, user: str) -> list[str | None]:
    """The ``impression_id`` of each logged event of ``user``, in order."""
    engine = create_engine(url)
    with engine.connect() as conn:
        query = text("SELECT impression_id FROM interactions WHERE user_id = :user ORDER BY id")
        found = [imp for (imp,) in conn.execute(query, {"user": user})]
    engine.dispose()
    return found


def test_the_second_look_does_not_hold_up_the_answer(
    replicas: tuple[TestClient, TestClient], postgres_url: str
) -> None:
    """Most write groups hold an event no list answered (every new user's), and B's
    second look ran on the writer's thread before their 201s: a transaction each. It
    runs on a thread of its own now: the answer is sent while the look still waits."""
    _, b = replicas
    _clear_user(postgres_url, "u-no-wait")
    rechecks = _rechecks(b)
    late = rechecks.late
    recheck = late.recheck
    answered = threading.Event()
    seen: list[bool] = []

    def held(*args: Any, **kwargs: Any) -> int:
        seen.append(answered.wait(10.0))  # on the writer's thread the answer never came
        return recheck(*args, **kwargs)

    late.recheck = held  # type: ignore[method-assign]
    try:
        event = _window_event("u-no-wait", "1")
        assert b.post("/v1/interactions", json={"interactions": [event]}).status_code == 201
        answered.set()
        assert rechecks.drain()
    finally:
        answered.set()
        late.recheck = recheck  # type: ignore[method-assign]
    assert seen == [True]
    _clear_user(postgres_url, "u-no-wait")
