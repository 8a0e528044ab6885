"""Two replicas (two ``create_app`` services) on one Postgres database and one Redis: a
click that reaches replica B before replica A has written the list it names is
attributed once A writes it, and counts once in its experiment; a click naming another
user's list, or an item the list did not show, stays unattributed. Also the race where
A writes the list (and looks for waiting clicks) between B's read and B's insert."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from app.core.db import upgrade_database
from app.repository import NewInteraction
from app.serving.attribution import Attributed

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


def test_a_list_written_between_the_clicks_read_and_its_insert_is_not_missed(
    replicas: tuple[TestClient, TestClient], postgres_url: str
) -> None:
    """B reads "no such impression"; A then commits the list and looks for waiting
    clicks before B's insert is in the database: B looks again after its insert."""
    a, b = replicas
    assert a.post("/admin/experiments", json=EXPERIMENT, headers=AUTH).status_code == 201
    mine = _recs(a, "u-race")
    attributor = b.app.state.services.interactions.attributor  # type: ignore[attr-defined]
    read = attributor.attribute

    def read_then_a_writes(db: Any, rows: Sequence[NewInteraction]) -> Attributed:
        found = read(db, rows)
        _flush(a)  # A's write and its look for waiting clicks, before B's insert
        return found

    attributor.attribute = read_then_a_writes
    click = _click("u-race", mine["items"][0]["item_id"], mine["recommendation_id"])
    assert b.post("/v1/interactions", json={"interactions": [click]}).status_code == 201
    assert [imp for _, _, imp in _attributions(postgres_url, [mine["recommendation_id"]])] == [
        mine["recommendation_id"]
    ]
    expected = {"control": 0, "ease": 0}
    expected[mine["variant"]] = 1
    assert _clicks(b) == expected
    assert _metric(b, "genrec_attribution_late_total") == 1.0
    assert _metric(a, "genrec_attribution_late_total") == 0.0
    assert _metric(b, 'genrec_experiment_clicks_total{experiment="late"') == 1.0
