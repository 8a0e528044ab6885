"""Times are shown and returned in UTC with the zone written ("Z"), whatever the database
session's time zone: a server whose Postgres sessions run in America/New_York (``PGTZ``)
shows and answers the same instants as one in UTC, and SQLite (naive UTC) does too."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from app.retrain.lifecycle import JobLog
from tests.app.conftest import ClientFactory
from tests.app.dashboard.login import log_in
from tests.conftest import POSTGRES_ADMIN_URL, scratch_database

TOKEN = "dash-times-token-9a1b"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SHOWN = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


@pytest.fixture(params=["sqlite", "postgres-new-york"])
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('times')}/times.db"
        return
    # libpq sends PGTZ as the session's TimeZone: timestamptz values come back at -05:00.
    patch = pytest.MonkeyPatch()
    patch.setenv("PGTZ", "America/New_York")
    try:
        scratch = scratch_database(POSTGRES_ADMIN_URL, "genrec_dash_times")
        url = scratch.__enter__()
    except Exception as exc:
        patch.undo()
        pytest.skip(f"PostgreSQL is not reachable ({exc})")
    try:
        yield url
    finally:
        scratch.__exit__(None, None, None)
        patch.undo()


@pytest.fixture
def dash(database_url: str, make_client: ClientFactory) -> TestClient:
    # database_url first: it is dropped after the client that uses it is closed.
    client = make_client(admin_token=TOKEN, default_model="ease", database_url=database_url)
    log_in(client, TOKEN)
    return client


def test_experiment_times_are_utc_with_the_zone_on_the_api_and_the_pages(dash: TestClient) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    created = dash.post(
        "/admin/experiments",
        json={
            "name": "tz",
            "variants": [
                {"name": "control", "model": "ease", "weight": 1},
                {"name": "vae", "model": "mult-vae", "weight": 1},
            ],
        },
        headers=AUTH,
    )
    assert created.status_code == 201, created.text
    stopped = dash.post("/admin/experiments/tz/stop", headers=AUTH)
    assert stopped.status_code == 200, stopped.text
    listed = dash.get("/admin/experiments", headers=AUTH).json()["experiments"][0]
    results = dash.get("/admin/experiments/tz", headers=AUTH).json()
    for moment in (listed["created_at"], listed["stopped_at"], results["created_at"]):
        assert moment.endswith("Z"), moment  # as jobs answer, not "-05:00"
        parsed = datetime.fromisoformat(moment)
        assert timedelta(0) <= parsed - before < timedelta(minutes=5)
    started = datetime.fromisoformat(listed["created_at"]).strftime("%Y-%m-%dT%H:%M:%SZ")

    page = dash.get("/dashboard/experiments", params={"name": "tz"}).text
    row = page.split('data-experiment="tz"')[1].split("</tr>")[0]
    assert f"<td>{started}</td>" in row
    assert len(SHOWN.findall(row)) == 2  # started, stopped
    status = page.split('data-testid="experiment-status"')[1].split("</p>")[0]
    assert f"started {started}, stopped " in status
    assert not re.search(r"\d\d:\d\d:\d\d(?!Z)", re.sub(r"<[^>]+>", " ", row + status))


def test_job_times_and_log_lines_say_utc(dash: TestClient) -> None:
    queued = dash.post("/admin/retrain", json={"model": "ease"}, headers=AUTH)
    assert queued.status_code == 202, queued.text
    job = dash.get("/admin/jobs", headers=AUTH).json()["jobs"][0]
    assert job["created_at"].endswith("Z")
    html = dash.get("/dashboard/jobs/list").text
    created = datetime.fromisoformat(job["created_at"]).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert f"<dt>created_at</dt><dd>{created}</dd>" in html
    log = JobLog(job_id=1)
    log.add("claimed by a worker")
    assert re.fullmatch(r"\d\d:\d\d:\d\dZ claimed by a worker", log.text())
