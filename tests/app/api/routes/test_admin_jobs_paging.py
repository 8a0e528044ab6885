"""``GET /admin/jobs`` pages: every job exactly once in (created_at, id) order, stable while
jobs are recorded between pages, the kind filter, and 422s for a bad kind or cursor; on
SQLite and on the real Postgres."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from app.core.db import session_scope
from app.db_models import RetrainJob
from app.retrain import lifecycle
from app.retrain.lifecycle import RetrainRequest
from tests.app.conftest import ClientFactory

TOKEN = "s3cret-admin-token-4711"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
PACIFIC = timezone(timedelta(hours=-8))


@pytest.fixture
def admin(
    make_client: ClientFactory, blank_database_url: str, job_sessions: sessionmaker[Session]
) -> TestClient:
    """The admin API on the migrated database ``job_sessions`` writes to."""
    return make_client(admin_token=TOKEN, database_url=blank_database_url)


def _record(sessions: sessionmaker[Session], n: int, at: datetime, kind: str = "retrain") -> int:
    """A job recorded at ``at`` (distinct params: no duplicate refusal); ``kind="tune"``
    rewrites it into a tune job's row (the list only reads kind and model)."""
    job = lifecycle.enqueue(sessions, RetrainRequest("ease", {"l2": float(n + 1)}), now=at)
    if kind == "tune":
        with session_scope(sessions) as session:
            changed = update(RetrainJob).where(RetrainJob.id == job.id)
            session.execute(changed.values(kind="tune", model="tune"))
    return job.id


def _pages(admin: TestClient, query: str, cursor: str | None = None) -> Iterator[dict[str, object]]:
    """Every page of ``/admin/jobs?{query}`` from ``cursor`` on, following next_cursor to
    the end (the cursor is never put in ``query`` as well: a parameter twice is a 422)."""
    while True:
        suffix = f"&cursor={cursor}" if cursor is not None else ""
        response = admin.get(f"/admin/jobs?{query}{suffix}", headers=AUTH)
        assert response.status_code == 200, response.text
        page: dict[str, object] = response.json()
        yield page
        cursor = page["next_cursor"]  # type: ignore[assignment]
        if cursor is None:
            return


def _ids(page: dict[str, object]) -> list[int]:
    return [job["id"] for job in page["jobs"]]  # type: ignore[attr-defined]


@pytest.fixture
def seven(job_sessions: sessionmaker[Session]) -> list[int]:
    """Seven jobs, newest first by (created_at, id): three share one microsecond, two
    another (ties the id must break), in a time zone other than UTC on the way in."""
    stamps = [T0, T0, T0, T0 + timedelta(microseconds=1), T0 + timedelta(microseconds=1)]
    stamps += [T0 - timedelta(days=1), T0 + timedelta(hours=5)]
    ids = [_record(job_sessions, n, at.astimezone(PACIFIC)) for n, at in enumerate(stamps)]
    return [i for _, i in sorted(zip(stamps, ids, strict=True), reverse=True)]


@pytest.mark.parametrize("limit", [1, 2, 3, 7, 8])
def test_paging_lists_every_job_once_in_order(
    admin: TestClient, seven: list[int], limit: int
) -> None:
    pages = list(_pages(admin, f"limit={limit}"))
    assert [i for page in pages for i in _ids(page)] == seven
    assert [len(_ids(page)) for page in pages[:-1]] == [limit] * (len(pages) - 1)
    assert len(pages) == max(1, -(-len(seven) // limit))  # no empty page after a full one


def test_a_job_recorded_between_pages_shifts_nothing(
    admin: TestClient, seven: list[int], job_sessions: sessionmaker[Session]
) -> None:
    first = admin.get("/admin/jobs?limit=2", headers=AUTH).json()  # ends inside a tie
    newest = _record(job_sessions, 100, T0 + timedelta(days=1))
    rest = admin.get(f"/admin/jobs?limit=2&cursor={first['next_cursor']}", headers=AUTH).json()
    tail = list(_pages(admin, "limit=2", rest["next_cursor"]))
    listed = _ids(first) + _ids(rest) + [i for page in tail for i in _ids(page)]
    assert listed == seven  # none skipped, none twice, the new one not among them
    assert _ids(admin.get("/admin/jobs?limit=3", headers=AUTH).json())[0] == newest


def test_kind_filter_combines_with_status_and_pages(
    admin: TestClient, job_sessions: sessionmaker[Session]
) -> None:
    kinds = ["retrain", "tune", "tune", "retrain", "tune"]
    ids = [_record(job_sessions, n, T0 + timedelta(seconds=n), k) for n, k in enumerate(kinds)]
    tunes = [i for i, k in zip(ids, kinds, strict=True) if k == "tune"][::-1]
    retrains = [i for i, k in zip(ids, kinds, strict=True) if k == "retrain"][::-1]
    lifecycle.cancel_job(job_sessions, tunes[0])

    listed = [i for page in _pages(admin, "kind=tune&limit=1") for i in _ids(page)]
    assert listed == tunes
    listed = [i for page in _pages(admin, "kind=retrain&limit=1") for i in _ids(page)]
    assert listed == retrains
    queued_tunes = admin.get("/admin/jobs?kind=tune&status=queued", headers=AUTH).json()
    assert _ids(queued_tunes) == tunes[1:] and queued_tunes["next_cursor"] is None
    assert _ids(admin.get("/admin/jobs?kind=retrain&model=tune", headers=AUTH).json()) == []
    kinds_seen = {j["kind"] for j in admin.get("/admin/jobs", headers=AUTH).json()["jobs"]}
    assert kinds_seen == {"retrain", "tune"}


def test_an_unknown_kind_is_a_422_naming_the_kinds(admin: TestClient) -> None:
    response = admin.get("/admin/jobs?kind=train", headers=AUTH)
    assert response.status_code == 422
    assert "kind" in response.text and "'retrain' or 'tune'" in response.text


def _token(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("cursor", "why"),
    [
        ("not-a-cursor!", "not a cursor this API handed out"),
        ("%C3%A9", "not a cursor this API handed out"),
        (_token("2026-01-01T12:00:00+00:00"), "not a cursor this API handed out"),
        (_token("2026-01-01T12:00:00+00:00|-3"), "not a cursor this API handed out"),
        (_token("yesterday|3"), "not a valid timestamp"),
        (_token("2026-01-01T12:00:00|3"), "no time zone"),
        (_token("2026-01-01T12:00:00+00:00|0"), "job id is out of range"),
        (_token(f"2026-01-01T12:00:00+00:00|{2**63}"), "job id is out of range"),
        ("", "expected 1 to 128 characters"),
    ],
)
def test_a_malformed_cursor_is_a_422_saying_so(
    admin: TestClient, seven: list[int], cursor: str, why: str
) -> None:
    response = admin.get(f"/admin/jobs?cursor={cursor}", headers=AUTH)
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_request"
    assert why in response.json()["message"] and "next_cursor" in response.json()["message"]


def test_a_too_long_cursor_is_refused_unread(admin: TestClient) -> None:
    response = admin.get(f"/admin/jobs?cursor={'A' * 129}", headers=AUTH)
    assert response.status_code == 422 and "cursor" in response.text


def test_openapi_documents_kind_cursor_and_next_cursor(admin: TestClient) -> None:
    spec = admin.get("/openapi.json").json()
    params = {p["name"]: p for p in spec["paths"]["/admin/jobs"]["get"]["parameters"]}
    assert params["kind"]["schema"]["anyOf"][0]["enum"] == ["retrain", "tune"]
    assert "next_cursor" in params["cursor"]["description"]
    page = spec["components"]["schemas"]["JobList"]["properties"]
    assert "null on the last page" in page["next_cursor"]["description"]


@pytest.mark.parametrize(
    "query",
    [
        "status=failed&status=queued",
        "kind=retrain&kind=tune",
        "limit=5&limit=50",
        "model=ease&model=ease",
    ],
)
def test_a_parameter_given_twice_is_a_422_not_last_wins(admin: TestClient, query: str) -> None:
    """FastAPI keeps the last of two values: ``?status=failed&status=queued`` listed only
    the queued jobs, as if the first filter had not been sent. The list routes of /v1
    refuse it (``app.api.query``); so does this one."""
    response = admin.get(f"/admin/jobs?{query}", headers=AUTH)
    assert response.status_code == 422, response.text
    name = query.split("=", 1)[0]
    assert response.json()["problems"] == [
        {"field": name, "message": "takes one value, given 2 times"}
    ]
