"""``POST /admin/tune``: a durable tune job, refused with a clear 422 for what the CLI refuses.

The token guard is tested with every admin route in ``test_admin.py``; the job
running through workers in ``tests/app/tune``.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.app.conftest import ClientFactory

TOKEN = "tune-admin-token-0815"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def admin(make_client: ClientFactory) -> TestClient:
    return make_client(admin_token=TOKEN)


def _tune(client: TestClient, body: dict[str, Any]) -> Any:
    return client.post("/admin/tune", json=body, headers=AUTH)


def test_a_tune_request_is_recorded_as_a_queued_tune_job(admin: TestClient) -> None:
    body = {
        "task": "topk",
        "models": ["ease", "popularity"],
        "budget_minutes": 0.5,
        "trials": 4,
        "split": "users",
        "metric": "recall@20",
        "seed": 3,
        "promote": True,
        "confirm_folds": 2,
    }
    response = _tune(admin, body)
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    job = admin.get(f"/admin/jobs/{job_id}", headers=AUTH).json()
    assert (job["kind"], job["model"], job["status"], job["trigger"]) == (
        "tune",
        "tune",
        "queued",
        "api",
    )
    assert job["params"] == body  # the request as the worker will read it
    assert (job["data"], job["promote"]) == ("log", "auto")
    assert job["result"] is None and job["search_until"] is None
    listed = admin.get("/admin/jobs", headers=AUTH).json()["jobs"]
    assert [(j["id"], j["kind"]) for j in listed] == [(job_id, "tune")]


def test_defaults_are_the_clis(admin: TestClient) -> None:
    job_id = _tune(admin, {}).json()["job_id"]
    params = admin.get(f"/admin/jobs/{job_id}", headers=AUTH).json()["params"]
    assert params == {
        "task": "topk",
        "models": None,
        "budget_minutes": 10.0,
        "trials": None,
        "split": None,
        "metric": None,
        "seed": 0,
        "promote": False,
        "confirm_folds": None,
    }


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"models": ["ease", "no-such-model"]}, "unknown model(s) no-such-model"),
        ({"task": "ratings", "models": ["ease"]}, "only rank items and cannot predict ratings"),
        ({"task": "clusters"}, "unknown task 'clusters'"),
        ({"budget_minutes": 0.1}, "too small for one trial"),
        ({"budget_minutes": 1e300}, "longer than a week"),
        ({"trials": 0}, "trials must be at least 1"),
        ({"trials": 2**62}, "trials must be at most 1,000,000, got 4611686018427387904"),
        ({"split": "random"}, "split random does not apply to task topk"),
        ({"task": "ratings", "split": "time"}, "split time does not apply to task ratings"),
        ({"metric": "rmse"}, "task topk selects on ndcg@K or recall@K"),
        ({"metric": "ndcg@0"}, "not 'ndcg@0'"),
        ({"task": "ratings", "metric": "ndcg@10"}, "task ratings selects on rmse or mae"),
        ({"models": []}, "models is empty"),
        ({"models": ["ease", "ease"]}, "names a model twice"),
        ({"confirm_folds": 0}, "confirm_folds must be between 1 and 20, got 0"),
        ({"confirm_folds": 2**63 - 1}, "confirm_folds must be between 1 and 20, got 92233"),
    ],
)
def test_what_the_cli_refuses_is_a_422_with_its_message(
    body: dict[str, Any], message: str, admin: TestClient
) -> None:
    response = _tune(admin, body)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_request"
    assert message in response.json()["message"]
    assert "--" not in response.json()["message"]  # field names, not CLI options
    assert admin.get("/admin/jobs", headers=AUTH).json()["jobs"] == []  # nothing recorded


@pytest.mark.parametrize(
    "body",
    [
        {"budget_minutes": "10"},
        {"trials": 2.5},
        {"promote": "yes"},
        {"seed": -1},
        {"models": "ease"},
        {"promte": True},
    ],
)
def test_wrongly_typed_fields_are_422(body: dict[str, Any], admin: TestClient) -> None:
    assert _tune(admin, body).status_code == 422
