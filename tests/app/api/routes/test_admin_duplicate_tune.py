"""POST /admin/tune queues no second job while an identical one is queued or running: a 409
``duplicate_job`` naming it, as POST /admin/retrain does (the same lock and twin check).

Identical: every field of the request (task, models in the same order, budget_minutes,
trials, split, metric, seed, confirm_folds, promote), as the job row records it. Two
identical requests at once queue one job on SQLite and on Postgres alike.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from app.retrain import lifecycle
from app.tune.jobs import TuneRequest, enqueue_tune, schedule_tune
from tests.app.api.routes.job_twins import enqueue_at_once, listed_jobs, scheduled_job
from tests.app.conftest import ClientFactory

TOKEN = "duplicate-tune-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BODY = {"models": ["ease", "popularity"], "budget_minutes": 0.5, "trials": 4, "seed": 3}


@pytest.fixture
def admin(make_client: ClientFactory) -> TestClient:
    return make_client(admin_token=TOKEN)


def _jobs(admin: TestClient) -> list[dict[str, object]]:
    return listed_jobs(admin, AUTH)


def test_an_identical_tune_is_a_409_naming_the_job_in_flight(admin: TestClient) -> None:
    first = admin.post("/admin/tune", json=BODY, headers=AUTH)
    assert first.status_code == 202, first.text
    job_id = first.json()["job_id"]
    # The same request: defaults spelled out, a whole number for the budget's 0.5 is not.
    spelled_out = {**BODY, "task": "topk", "promote": False, "split": None, "metric": None}
    again = admin.post("/admin/tune", json=spelled_out, headers=AUTH)
    assert again.status_code == 409, again.text
    answer = again.json()
    assert answer["error"] == "duplicate_job"
    assert answer["details"] == {"job_id": job_id, "status": "queued"}
    assert answer["message"].startswith("an identical tune (same task, models, budget_minutes")
    assert f"job {job_id}" in answer["message"]
    assert [job["id"] for job in _jobs(admin)] == [job_id]


def test_a_whole_budget_is_the_same_budget(admin: TestClient) -> None:
    body = {**BODY, "budget_minutes": 2}
    job_id = admin.post("/admin/tune", json=body, headers=AUTH).json()["job_id"]
    again = admin.post("/admin/tune", json={**body, "budget_minutes": 2.0}, headers=AUTH)
    assert again.status_code == 409 and again.json()["details"]["job_id"] == job_id


@pytest.mark.parametrize(
    "other",
    [
        {"task": "ratings", "models": None},
        {"models": ["popularity", "ease"]},  # the order of the choices can steer the sampler
        {"models": ["ease"]},
        {"models": None},
        {"budget_minutes": 0.75},
        {"trials": 5},
        {"trials": None},
        {"split": "time"},
        {"metric": "recall@20"},
        {"seed": 4},
        {"confirm_folds": 2},
        {"promote": True},
    ],
)
def test_a_tune_that_differs_in_any_setting_is_queued(
    other: dict[str, object], admin: TestClient
) -> None:
    assert admin.post("/admin/tune", json=BODY, headers=AUTH).status_code == 202
    second = admin.post("/admin/tune", json={**BODY, **other}, headers=AUTH)
    assert second.status_code == 202, second.text
    assert len(_jobs(admin)) == 2


def test_a_retrain_is_no_twin_of_a_tune(admin: TestClient) -> None:
    assert admin.post("/admin/tune", json=BODY, headers=AUTH).status_code == 202
    retrain = {"model": "ease", "params": {}, "data": "log", "promote": "never"}
    assert admin.post("/admin/retrain", json=retrain, headers=AUTH).status_code == 202
    assert admin.post("/admin/tune", json=BODY, headers=AUTH).status_code == 409


def test_once_the_job_is_cancelled_the_same_tune_is_queued_again(admin: TestClient) -> None:
    job_id = admin.post("/admin/tune", json=BODY, headers=AUTH).json()["job_id"]
    assert admin.post(f"/admin/jobs/{job_id}/cancel", headers=AUTH).status_code == 200
    again = admin.post("/admin/tune", json=BODY, headers=AUTH)
    assert again.status_code == 202, again.text
    assert again.json()["job_id"] != job_id
    assert [(job["id"], job["status"]) for job in _jobs(admin)] == [
        (again.json()["job_id"], "queued"),
        (job_id, "cancelled"),
    ]


def test_a_scheduled_tune_in_flight_is_named_to_the_same_request(
    make_client: ClientFactory, tmp_path: Path
) -> None:
    """GENREC_TUNE_INTERVAL_HOURS's job (every model, gated promotion) is the twin of a
    request for the same: the request is refused naming it, nothing is queued twice."""
    admin, scheduled = scheduled_job(
        make_client, tmp_path, TOKEN, lambda sessions: schedule_tune(sessions, 3600.0, 0.5)
    )
    assert scheduled is not None and scheduled.trigger == "schedule"
    body = {"budget_minutes": 0.5, "promote": True}
    again = admin.post("/admin/tune", json=body, headers=AUTH)
    assert again.status_code == 409, again.text
    assert again.json()["details"] == {"job_id": scheduled.id, "status": "queued"}


REQUEST = TuneRequest(models=("ease", "popularity"), budget_minutes=0.5, trials=2, seed=1)


def test_identical_requests_at_once_queue_one_job(job_sessions: sessionmaker[Session]) -> None:
    """The duplicate check and the insert share the retrain requests' lock: without it
    every request read "no job" before any wrote, and each queued a search."""
    n = 6
    created, refused, outcomes = enqueue_at_once(
        lambda: enqueue_tune(job_sessions, REQUEST, unless_active=True), n
    )
    assert len(created) == 1 and len(refused) == n - 1, outcomes
    assert {exc.job_id for exc in refused} == set(created)
    assert [job.id for job in lifecycle.list_jobs(job_sessions)] == created


def test_a_running_tune_is_a_twin_too(job_sessions: sessionmaker[Session]) -> None:
    job = enqueue_tune(job_sessions, REQUEST, unless_active=True)
    claimed = lifecycle.claim_next(job_sessions, "worker-1", 60.0)
    assert claimed is not None and claimed.id == job.id
    with pytest.raises(lifecycle.DuplicateJob) as refused:
        enqueue_tune(job_sessions, REQUEST, unless_active=True)
    assert (refused.value.job_id, refused.value.status) == (job.id, "running")
    assert [j.id for j in lifecycle.list_jobs(job_sessions)] == [job.id]
