"""POST /admin/retrain (and the dashboard's Start retrain form, which calls it) queues no
second job while an identical one is queued or running: a 409 ``duplicate_job`` naming it.

Identical: the same model, params (as JSON, key order aside), data and promote. Two
identical requests at once queue one job on SQLite and on Postgres alike.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from app.retrain import lifecycle
from tests.app.api.routes.job_twins import enqueue_at_once, listed_jobs, scheduled_job
from tests.app.conftest import ClientFactory
from tests.app.dashboard.login import log_in

TOKEN = "duplicate-retrain-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BODY = {"model": "ease", "params": {"l2": 200.0, "seed": 3}, "data": "log", "promote": "never"}


@pytest.fixture
def admin(make_client: ClientFactory) -> TestClient:
    return make_client(admin_token=TOKEN)


def _jobs(admin: TestClient) -> list[dict[str, object]]:
    return listed_jobs(admin, AUTH)


def test_an_identical_retrain_is_a_409_naming_the_job_in_flight(admin: TestClient) -> None:
    first = admin.post("/admin/retrain", json=BODY, headers=AUTH)
    assert first.status_code == 202, first.text
    job_id = first.json()["job_id"]
    reordered = {**BODY, "params": {"seed": 3, "l2": 200.0}}  # key order does not count
    again = admin.post("/admin/retrain", json=reordered, headers=AUTH)
    assert again.status_code == 409, again.text
    answer = again.json()
    assert answer["error"] == "duplicate_job"
    assert answer["details"] == {"job_id": job_id, "status": "queued"}
    assert f"job {job_id}" in answer["message"] and "ease" in answer["message"]
    assert [job["id"] for job in _jobs(admin)] == [job_id]


@pytest.mark.parametrize(
    "other",
    [
        {"model": "biased-mf"},
        {"params": {"l2": 100.0, "seed": 3}},
        {"params": {"l2": 200, "seed": 3}},  # 200 is not 200.0: not provably the same run
        {"data": "log+base"},
        {"promote": "auto"},
    ],
)
def test_a_retrain_that_differs_in_any_setting_is_queued(
    other: dict[str, object], admin: TestClient
) -> None:
    assert admin.post("/admin/retrain", json=BODY, headers=AUTH).status_code == 202
    assert admin.post("/admin/retrain", json={**BODY, **other}, headers=AUTH).status_code == 202
    assert len(_jobs(admin)) == 2


def test_once_the_job_has_ended_the_same_retrain_is_queued_again(admin: TestClient) -> None:
    job_id = admin.post("/admin/retrain", json=BODY, headers=AUTH).json()["job_id"]
    assert admin.post(f"/admin/jobs/{job_id}/cancel", headers=AUTH).status_code == 200
    again = admin.post("/admin/retrain", json=BODY, headers=AUTH)
    assert again.status_code == 202 and again.json()["job_id"] != job_id


def test_identical_requests_at_once_queue_one_job(job_sessions: sessionmaker[Session]) -> None:
    """The duplicate check and the insert share a lock: without it both requests read "no
    job" before either wrote, and both queued."""
    request = lifecycle.RetrainRequest(model="ease", params={"l2": 1.0}, data="log")
    n = 6
    created, refused, outcomes = enqueue_at_once(
        lambda: lifecycle.enqueue(job_sessions, request, unless_active=True), n
    )
    assert len(created) == 1 and len(refused) == n - 1, outcomes
    assert {exc.job_id for exc in refused} == set(created)
    assert [job.id for job in lifecycle.list_jobs(job_sessions)] == created


def test_the_dashboard_form_says_once_which_job_is_already_doing_it(admin: TestClient) -> None:
    log_in(admin, TOKEN)
    page = admin.get("/dashboard/jobs").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    form = {"model": "ease", "promote": "never", "params": "{}", "csrf_token": token.group(1)}
    assert admin.post("/dashboard/jobs", data=form, follow_redirects=False).status_code == 303
    again = admin.post("/dashboard/jobs", data=form, follow_redirects=False)
    assert (again.status_code, again.headers["location"]) == (303, "/dashboard/jobs")
    notice = re.search(
        r'<p class="notice" role="status">([^<]*)</p>', admin.get(again.headers["location"]).text
    )
    assert notice, "no notice"
    assert notice.group(1).startswith("Not queued: job 1 is already queued with the same settings")
    reloaded = admin.get("/dashboard/jobs").text
    assert "Not queued" not in reloaded and 'data-job-id="2"' not in reloaded
    assert len(_jobs(admin)) == 1


def test_a_scheduled_retrain_in_flight_is_named_to_the_same_request(
    make_client: ClientFactory, tmp_path: Path
) -> None:
    """GENREC_RETRAIN_EVERY's job (log+base, promote auto, no params) is the twin of a
    request for the same model: the request is refused naming it."""
    admin, scheduled = scheduled_job(
        make_client,
        tmp_path,
        TOKEN,
        lambda sessions: lifecycle.schedule_periodic(sessions, "ease", 3600.0),
    )
    assert scheduled is not None and scheduled.trigger == "schedule"
    again = admin.post("/admin/retrain", json={"model": "ease"}, headers=AUTH)
    assert again.status_code == 409, again.text
    assert again.json()["details"] == {"job_id": scheduled.id, "status": "queued"}
