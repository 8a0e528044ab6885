"""Client input the database cannot store is a 422 naming the field (issue #16, items 1-2).

Against the real Postgres: it refuses a NUL in text and integers beyond 64
bits, where SQLite stores both. Before the fix these requests answered 503
``database_unavailable`` (an outage alert, a counted database error, a client
retrying what can never succeed), a ``degraded`` 200, or a 500.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from tests.app.api.conftest import ADMIN

pytestmark = pytest.mark.integration

NUL = "a\x00b"
#: JSON text with a lone surrogate escape: ``json.dumps`` cannot write one from Python.
LONE = '"a\\ud800b"'


def _database_errors(client: TestClient) -> float:
    metrics = client.app.state.services.metrics  # type: ignore[attr-defined]
    return sum(
        metrics.database_errors.labels(operation=op)._value.get() for op in ("read", "write")
    )


def _assert_422_naming(response: Any, field: str) -> None:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "invalid_request", body
    assert field in [p["field"] for p in body["problems"]], body
    assert body["message"].startswith(f"{field}: ") and "must not contain" in body["message"]


#: (method, url, JSON body, field the 422 names): every route with a string reaching
#: the database or the store, through its body, path or query.
NUL_CASES = [
    ("POST", "/v1/interactions", {"user_id": NUL, "item_id": "1"}, "user_id"),
    ("POST", "/v1/interactions", {"user_id": "u1", "item_id": NUL}, "item_id"),
    (
        "POST",
        "/v1/interactions",
        {"interactions": [{"user_id": "u1", "item_id": "1"}, {"user_id": "u1", "item_id": NUL}]},
        "interactions[1].item_id",
    ),
    ("GET", "/v1/users/a%00b/recommendations", None, "user_id"),
    ("GET", "/v1/users/u1/recommendations?model=a%00b", None, "model"),
    ("GET", "/v1/users/u1/recommendations?exclude=1&exclude=a%00b", None, "exclude[1]"),
    ("POST", "/v1/recommendations", {"history": [{"item_id": NUL}]}, "history[0].item_id"),
    ("POST", "/v1/recommendations", {"model": NUL}, "model"),
    ("POST", "/v1/predictions", {"user_id": NUL, "item_ids": ["1"]}, "user_id"),
    ("POST", "/v1/predictions", {"user_id": "u1", "item_ids": [NUL]}, "item_ids[0]"),
    ("GET", "/v1/items/a%00b/similar", None, "item_id"),
    ("GET", "/v1/items/a%00b", None, "item_id"),
    ("PUT", "/v1/items/a%00b", {"title": "t"}, "item_id"),
    ("PUT", "/v1/items/x", {"title": NUL}, "title"),
    ("PUT", "/v1/items/x", {"text": NUL}, "text"),
    ("PUT", "/v1/items/x", {"attributes": {"tags": ["ok", NUL]}}, "attributes"),
    # a key is quoted escaped (app.core.text.clip): a raw NUL in a message is not readable
    ("PUT", "/v1/items/x", {"attributes": {NUL: 1}}, "attributes.a\\x00b.[key]"),
    ("POST", "/admin/retrain", {"model": NUL}, "model"),
    ("POST", "/admin/retrain", {"model": "ease", "params": {"seed": NUL}}, "params.seed"),
    ("GET", "/admin/jobs?model=a%00b", None, "model"),
    ("POST", "/admin/models/a%00b/promote", {"version": "1"}, "name"),
    ("POST", "/admin/models/ease/promote", {"version": NUL}, "version"),
    ("POST", "/admin/models/a%00b/rollback", None, "name"),
]


@pytest.mark.parametrize(("method", "url", "body", "field"), NUL_CASES)
def test_a_nul_anywhere_is_a_422_naming_the_field_not_an_outage(
    pg_client: TestClient, method: str, url: str, body: Any, field: str
) -> None:
    before = _database_errors(pg_client)
    response = pg_client.request(method, url, json=body, headers=ADMIN)
    _assert_422_naming(response, field)
    assert _database_errors(pg_client) == before  # no alert fires for a client's mistake


@pytest.mark.parametrize(
    ("url", "body", "field"),
    [
        ("/v1/interactions", f'{{"user_id": {LONE}, "item_id": "1"}}', "user_id"),
        ("/v1/recommendations", f'{{"history": [{{"item_id": {LONE}}}]}}', "history[0].item_id"),
        ("/admin/retrain", f'{{"model": "ease", "params": {{"seed": {LONE}}}}}', "params.seed"),
        ("/v1/items/x", f'{{"attributes": {{"k": {LONE}}}}}', "attributes"),
        ("/v1/items/x", f'{{"attributes": {{"k": [{{"deep": {LONE}}}]}}}}', "attributes"),
    ],
)
def test_a_lone_surrogate_is_a_422_and_nothing_is_stored(
    pg_client: TestClient, url: str, body: str, field: str
) -> None:
    """A lone surrogate is not Unicode: stored in a JSON column it made every later
    ``GET /v1/items/x`` a 500 (the answer cannot be encoded as UTF-8)."""
    method = "PUT" if url.startswith("/v1/items/") else "POST"
    headers = {**ADMIN, "content-type": "application/json"}
    response = pg_client.request(method, url, content=body.encode(), headers=headers)
    _assert_422_naming(response, field)
    assert "lone surrogate" in response.json()["message"]
    assert pg_client.get("/v1/items/x").status_code == 404


def test_valid_text_still_goes_through(pg_client: TestClient) -> None:
    """The rule refuses only what cannot be stored: other control and non-ASCII characters
    (and surrogate *pairs*, i.e. astral characters) are ordinary text."""
    odd = "tab\there é 😀 \x01"
    assert (
        pg_client.post("/v1/interactions", json={"user_id": odd, "item_id": "1"}).status_code == 201
    )
    # (an attribute *name* is one a rule can name, docs/rules.md: the text is its value)
    r = pg_client.put(
        "/v1/items/odd", json={"title": odd, "attributes": {"odd": [odd]}}, headers=ADMIN
    )
    assert r.status_code == 201, r.text
    assert pg_client.get("/v1/items/odd").json()["attributes"] == {"odd": [odd]}
    r = pg_client.get(f"/v1/users/{quote(odd)}/recommendations")
    assert (r.status_code, r.json()["user_id"], r.json()["degraded"]) == (200, odd, False)


@pytest.mark.parametrize("job_id", [2**63, 2**64 + 5, -(2**63) - 1, 2**63 - 1, -1, 0])
def test_job_ids_outside_64_bits_are_404_like_minus_one(pg_client: TestClient, job_id: int) -> None:
    for method, url in (("GET", f"/admin/jobs/{job_id}"), ("POST", f"/admin/jobs/{job_id}/cancel")):
        r = pg_client.request(method, url, headers=ADMIN)
        assert r.status_code == 404, (url, r.text)
        assert r.json()["error"] == "job_not_found"


def test_integers_beyond_64_bits_in_job_fields_are_422(pg_client: TestClient) -> None:
    jobs_before = pg_client.get("/admin/jobs", headers=ADMIN).json()["jobs"]
    for value in (2**63, -(2**63) - 1, 10**23):
        body = {"model": "ease", "params": {"seed": value}}
        r = pg_client.post("/admin/retrain", json=body, headers=ADMIN)
        assert r.status_code == 422 and "64-bit" in r.json()["message"], r.text
        r = pg_client.post("/admin/models/ease/promote", json={"version": value}, headers=ADMIN)
        assert r.status_code == 422 and r.json()["problems"][0]["field"] == "version", r.text
    r = pg_client.get("/admin/jobs", headers=ADMIN)
    assert r.status_code == 200 and r.json()["jobs"] == jobs_before  # nothing was queued
