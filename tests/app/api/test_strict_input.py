"""Strict JSON types in request bodies, and a readable 422 for a large bad batch
(issue #16, items 8 and 10), against the real Postgres and Redis.

The decision (README, "HTTP API input"): a body's number field takes a JSON
number, a boolean field ``true``/``false``, a timestamp an ISO-8601 string;
``"5"`` for a rating used to be coerced and stored.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import func, select

from app.core.db import session_scope
from app.core.errors import MAX_PROBLEMS, summarize_rows
from app.db_models import Interaction
from app.rules.request import QueryLambda
from app.schemas_fields import IsoDateTime, JsonObject, QueryInt
from tests.app.api.conftest import ADMIN

pytestmark = pytest.mark.integration


def _logged(client: TestClient, user_id: str) -> int:
    services = client.app.state.services  # type: ignore[attr-defined]
    with session_scope(services.sessions) as session:
        query = select(func.count()).where(Interaction.user_id == user_id)
        return int(session.scalar(query) or 0)


#: (url, body, field): a value of the wrong JSON type in every numeric / boolean /
#: timestamp field of every request model.
WRONG_TYPES = [
    ("/v1/interactions", {"user_id": "s1", "item_id": "1", "rating": "5"}, "rating"),
    ("/v1/interactions", {"user_id": "s1", "item_id": "1", "rating": True}, "rating"),
    (
        "/v1/interactions",
        {"user_id": "s1", "item_id": "1", "timestamp": 1_600_000_000},
        "timestamp",
    ),
    ("/v1/interactions", {"user_id": "s1", "item_id": "1", "timestamp": "1600000000"}, "timestamp"),
    (
        "/v1/interactions",
        {"interactions": [{"user_id": "s1", "item_id": "1", "rating": "4.5"}]},
        "interactions[0].rating",
    ),
    ("/v1/recommendations", {"history": [{"item_id": "1", "rating": "5"}]}, "history[0].rating"),
    ("/v1/recommendations", {"k": "5"}, "k"),
    ("/v1/recommendations", {"k": 5.0}, "k"),
    ("/v1/recommendations", {"k": True}, "k"),
    ("/v1/recommendations", {"exclude_seen": "false"}, "exclude_seen"),
    ("/v1/recommendations", {"exclude_seen": 0}, "exclude_seen"),
    ("/admin/retrain", {"model": "ease", "params": {"seed": [1]}}, "params.seed"),
    ("/admin/models/ease/promote", {"version": 1.5}, "version"),
]


@pytest.mark.parametrize(("url", "body", "field"), WRONG_TYPES)
def test_a_value_of_the_wrong_json_type_is_a_422_naming_the_field(
    pg_client: TestClient, url: str, body: dict[str, Any], field: str
) -> None:
    r = pg_client.post(url, json=body, headers=ADMIN)
    assert r.status_code == 422, r.text
    assert r.json()["problems"][0]["field"] == field, r.json()
    assert _logged(pg_client, "s1") == 0


def test_json_numbers_of_either_kind_are_accepted(pg_client: TestClient) -> None:
    for rating in (5, 4.5):
        body = {
            "user_id": "s2",
            "item_id": "1",
            "rating": rating,
            "timestamp": "2026-11-23T10:00:00Z",
        }
        assert pg_client.post("/v1/interactions", json=body).status_code == 201
    assert _logged(pg_client, "s2") == 2
    r = pg_client.post(
        "/v1/recommendations",
        json={"history": [{"item_id": "1", "rating": 5}], "k": 3, "exclude_seen": False},
    )
    assert r.status_code == 200 and len(r.json()["items"]) == 3


def test_query_strings_are_parsed_then_checked(pg_client: TestClient) -> None:
    """A query string is text by nature: ``k=5`` is read as 5, ``k=five`` is a 422."""
    assert pg_client.get("/v1/users/u1/recommendations?k=5&exclude_seen=false").status_code == 200
    r = pg_client.get("/v1/users/u1/recommendations?k=five")
    assert r.status_code == 422 and r.json()["problems"][0]["field"] == "k"


def test_a_large_batch_with_the_same_mistake_everywhere_gives_a_small_422(
    pg_client: TestClient,
) -> None:
    rows = [{"user_id": "s3", "item_id": str(i), "rating": "5"} for i in range(1_000)]
    r = pg_client.post("/v1/interactions", json={"interactions": rows})
    assert r.status_code == 422
    assert len(r.content) < 8_000, len(r.content)  # was ~200 KB
    body = r.json()
    assert len(body["problems"]) == MAX_PROBLEMS
    assert body["details"] == {
        "problems_total": 1_000,
        "problems_shown": MAX_PROBLEMS,
        "rows_total": 1_000,
        "rows": "0-999",
    }
    assert body["message"].startswith("1000 problems in 1000 rows (0-999); the first 20: ")
    assert body["message"].count("rating") == MAX_PROBLEMS
    assert _logged(pg_client, "s3") == 0


def test_scattered_bad_rows_are_summarised_as_ranges(pg_client: TestClient) -> None:
    rows = [
        {"user_id": "s4", "item_id": str(i), **({"rating": "x"} if i % 3 else {})}
        for i in range(300)
    ]
    r = pg_client.post("/v1/interactions", json={"interactions": rows})
    details = r.json()["details"]
    assert (r.status_code, details["problems_total"], details["rows_total"]) == (422, 200, 200)
    assert details["rows"].startswith("1-2, 4-5, 7-8") and details["rows"].endswith(", ...")
    assert len(r.content) < 8_000


def test_a_few_problems_are_listed_without_a_summary(pg_client: TestClient) -> None:
    rows = [{"user_id": "s5", "item_id": "1", "rating": "5"}] * 3
    body = pg_client.post("/v1/interactions", json={"interactions": rows}).json()
    assert [p["field"] for p in body["problems"]] == [f"interactions[{n}].rating" for n in range(3)]
    assert "details" not in body


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([], ""),
        ([3], "3"),
        ([0, 1, 2, 5, 7, 8], "0-2, 5, 7-8"),
        (list(range(0, 100, 2)), ", ".join(str(n) for n in range(0, 40, 2)) + ", ..."),
    ],
)
def test_summarize_rows(rows: list[int], expected: str) -> None:
    assert summarize_rows(rows) == expected


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"epochs": 2.5}, "setting 'epochs' must be an integer, got 2.5"),
        ({"epochs": True}, "setting 'epochs' must be an integer, got True"),
        ({"lr": False}, "setting 'lr' must be a number, got False"),
        ({"epochs": None}, "setting 'epochs' must be an integer, got None"),
        ({"optimizer": 3}, "setting 'optimizer' must be a string, got 3"),
    ],
)
def test_retrain_params_of_the_wrong_type_are_422_before_anything_is_queued(
    pg_client: TestClient, params: dict[str, Any], message: str
) -> None:
    """A config takes a non-string value as it is: ``{"epochs": 2.5}`` used to be queued
    and fail minutes later in a worker."""
    before = pg_client.get("/admin/jobs", headers=ADMIN).json()["jobs"]
    r = pg_client.post(
        "/admin/retrain", json={"model": "biased-mf", "params": params}, headers=ADMIN
    )
    assert r.status_code == 422 and message in r.json()["message"], r.text
    assert pg_client.get("/admin/jobs", headers=ADMIN).json()["jobs"] == before


def test_retrain_params_of_the_settings_types_are_queued(pg_client: TestClient) -> None:
    params = {"epochs": 3, "lr": 1, "l2": 0.01, "patience": None, "factors": "8"}
    r = pg_client.post(
        "/admin/retrain", json={"model": "biased-mf", "params": params}, headers=ADMIN
    )
    assert r.status_code == 202, r.text
    job = pg_client.get(f"/admin/jobs/{r.json()['job_id']}", headers=ADMIN).json()
    assert job["params"] == params
    pg_client.post(f"/admin/jobs/{job['id']}/cancel", headers=ADMIN)


@pytest.mark.parametrize(
    ("field_type", "value", "quoted"),
    [
        (QueryInt, "a" * 30_000, "got '" + "a" * 77 + "...'"),
        (QueryLambda, "a" * 30_000, "got '" + "a" * 77 + "...'"),
        (IsoDateTime, "1" * 30_000, "got str '" + "1" * 77 + "...'"),
        (JsonObject, {"k" * 30_000: ["\x00"]}, "k" * 77 + "...[0] "),
    ],
)
def test_a_refused_value_is_quoted_clipped(field_type: Any, value: Any, quoted: str) -> None:
    """Validators quoted the refused value whole (``k=`` + 30 KB was a 30 KB message);
    the 422's 300-character bound then cut the quote short. They quote it clipped."""
    with pytest.raises(ValidationError) as caught:
        TypeAdapter(field_type).validate_python(value)
    message = caught.value.errors()[0]["msg"]
    assert quoted in message and len(message) < 300, message
