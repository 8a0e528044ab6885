"""Admin API: bearer-token guard, retrain jobs, and alias moves seen by the running server."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from models_store import ModelStore
from tests.app.conftest import ClientFactory
from training.models import REGISTRY

TOKEN = "s3cret-admin-token-4711"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

ENDPOINTS = [
    ("post", "/admin/retrain", {"model": "ease"}),
    ("post", "/admin/tune", {"task": "topk"}),
    ("get", "/admin/jobs", None),
    ("get", "/admin/jobs?kind=tune&limit=1&cursor=x", None),
    ("get", "/admin/jobs/1", None),
    ("post", "/admin/jobs/1/cancel", None),
    ("get", "/admin/models", None),
    ("post", "/admin/models/ease/promote", {"version": "1"}),
    ("post", "/admin/models/ease/rollback", None),
    ("post", "/admin/experiments", {"name": "x", "variants": []}),
    ("get", "/admin/experiments", None),
    ("get", "/admin/experiments/x", None),
    ("post", "/admin/experiments/x/stop", None),
]


@pytest.fixture
def admin(make_client: ClientFactory) -> TestClient:
    return make_client(admin_token=TOKEN)


def _call(client: TestClient, method: str, path: str, body: object, headers: dict[str, str]):
    return client.request(method.upper(), path, json=body, headers=headers)


# --------------------------------------------------------------------------- auth


@pytest.mark.parametrize("token", [None, "", "   "])
def test_admin_api_is_disabled_without_a_configured_token(
    token: str | None, make_client: ClientFactory
) -> None:
    client = make_client(admin_token=token)
    for method, path, body in ENDPOINTS:
        response = _call(client, method, path, body, {"Authorization": "Bearer anything"})
        assert response.status_code == 403, path
        assert response.json()["error"] == "admin_disabled"
        assert "GENREC_ADMIN_TOKEN" in response.json()["message"]


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "missing admin token"),
        ({"Authorization": "Bearer wrong"}, "invalid admin token"),
        ({"Authorization": f"Bearer {TOKEN}x"}, "invalid admin token"),
        ({"Authorization": f"Basic {TOKEN}"}, "missing admin token"),
        ({"Authorization": TOKEN}, "missing admin token"),
    ],
)
def test_wrong_or_missing_token_is_401(
    headers: dict[str, str], message: str, make_client: ClientFactory
) -> None:
    # Every endpoint once: more failures than the lockout allows, so it is off here
    # (the lockout has its own tests, tests/app/dashboard/test_pages.py).
    admin = make_client(admin_token=TOKEN, admin_max_failures=0)
    for method, path, body in ENDPOINTS:
        response = _call(admin, method, path, body, headers)
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["error"] == "unauthorized", path  # the /v1 key check's code
        assert message in response.json()["message"]
    assert admin.get("/admin/jobs", headers=AUTH).json()["jobs"] == []  # nothing was enqueued


#: Every admin operation that takes a JSON body.
BODY_ENDPOINTS = [
    ("post", "/admin/retrain"),
    ("post", "/admin/tune"),
    ("post", "/admin/models/ease/promote"),
    ("post", "/admin/models/ease/rollback"),
    ("post", "/admin/experiments"),
    ("put", "/v1/items/x"),
]


@pytest.mark.parametrize(("method", "path"), BODY_ENDPOINTS)
@pytest.mark.parametrize("locked_out", [False, True])
def test_the_token_is_checked_before_the_body_is_read(
    method: str, path: str, locked_out: bool, make_client: ClientFactory
) -> None:
    # FastAPI reads and parses a body parameter before it runs the route's dependencies:
    # without a token, anyone could make the server parse a JSON body of up to
    # GENREC_MAX_BODY_BYTES (64 MB: seconds of the event loop's CPU and hundreds of MB
    # of objects) per request, locked out or not. A body that is no JSON at all shows
    # whether it was parsed: a 422 said so, the guard's 401 / 429 says it was not.
    admin = make_client(admin_token=TOKEN, admin_max_failures=1 if locked_out else 0)
    wrong = {"Authorization": "Bearer wrong", "Content-Type": "application/json"}
    if locked_out:
        admin.get("/admin/jobs", headers=wrong)
    response = admin.request(method.upper(), path, content=b"{not json", headers=wrong)
    assert response.status_code == (429 if locked_out else 401), response.text
    assert response.json()["error"] == ("too_many_failures" if locked_out else "unauthorized")
    # The right token still gets the body read and checked.
    response = admin.request(method.upper(), path, content=b"{not json", headers={**wrong, **AUTH})
    assert response.status_code == (429 if locked_out else 422), response.text


def test_token_never_reaches_the_logs_or_responses(
    admin: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bodies = [
        _call(admin, m, p, b, h).text
        for m, p, b in ENDPOINTS
        for h in (AUTH, {"Authorization": "Bearer wrong"}, {})
    ]
    assert caplog.records  # the requests were logged ...
    assert TOKEN not in caplog.text  # ... without the token
    assert all(TOKEN not in body for body in bodies)


def test_settings_repr_hides_the_token(admin: TestClient) -> None:
    settings = admin.app.state.services.settings  # type: ignore[attr-defined]
    assert TOKEN not in repr(settings) and TOKEN not in str(settings.model_dump())


# --------------------------------------------------------------------------- jobs


def test_retrain_records_a_queued_job(admin: TestClient) -> None:
    body = {"model": "ease", "params": {"l2": 100.0}, "data": "log", "promote": "never"}
    response = admin.post("/admin/retrain", json=body, headers=AUTH)
    assert response.status_code == 202
    job_id = response.json()["job_id"]
    assert response.json()["status"] == "queued"

    job = admin.get(f"/admin/jobs/{job_id}", headers=AUTH).json()
    assert {k: job[k] for k in ("id", "model", "params", "data", "promote", "status")} == {
        "id": job_id,
        "model": "ease",
        "params": {"l2": 100.0},
        "data": "log",
        "promote": "never",
        "status": "queued",
    }
    assert job["attempts"] == 0 and job["log_tail"] == [] and job["created_at"].endswith("Z")
    listed = admin.get("/admin/jobs?status=queued&model=ease", headers=AUTH).json()["jobs"]
    assert [j["id"] for j in listed] == [job_id]
    assert admin.get("/admin/jobs?status=running", headers=AUTH).json()["jobs"] == []


def test_the_jobs_model_filter_takes_the_names_its_schema_lists(admin: TestClient) -> None:
    """``?model=`` takes what the OpenAPI enum offers (the registered models and ``tune``,
    the model of tune jobs), and a name outside it is a 422 naming them, as a retrain of
    an unknown model is: ``?model=eas`` listed no jobs, as if there were none."""
    job_id = admin.post("/admin/retrain", json={"model": "ease"}, headers=AUTH).json()["job_id"]
    operation = admin.get("/openapi.json").json()["paths"]["/admin/jobs"]["get"]
    (parameter,) = [p for p in operation["parameters"] if p["name"] == "model"]
    offered = parameter["schema"]["enum"]
    assert set(offered) == {*REGISTRY, "tune"}
    for model in offered:
        response = admin.get(f"/admin/jobs?model={model}", headers=AUTH)
        assert response.status_code == 200, response.text
        listed = [j["id"] for j in response.json()["jobs"]]
        assert listed == ([job_id] if model == "ease" else []), model
    response = admin.get("/admin/jobs?model=eas", headers=AUTH)
    assert response.status_code == 422, response.text
    problem = response.json()["problems"][0]
    assert problem["field"] == "model", problem
    assert "unknown model 'eas'; known: biased-mf, " in problem["message"], problem
    assert ", tune" in problem["message"], problem


def test_retrain_defaults_to_log_plus_base_and_auto(admin: TestClient) -> None:
    job_id = admin.post("/admin/retrain", json={"model": "mult-vae"}, headers=AUTH).json()["job_id"]
    job = admin.get(f"/admin/jobs/{job_id}", headers=AUTH).json()
    assert (job["data"], job["promote"], job["params"], job["trigger"]) == (
        "log+base",
        "auto",
        {},
        "api",
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"model": "nope"}, "unknown model 'nope'"),
        ({"model": "ease", "params": {"nope": 1}}, "unknown setting 'nope'"),
        ({"model": "mult-vae", "params": {"epochs": "x"}}, "cannot read 'x'"),
        ({"model": "mult-vae", "params": {"device": "gpu"}}, "device must be auto, cpu, cuda"),
        # A job that trains "forever" (or allocates a 2**40-wide layer minutes in).
        ({"model": "mult-vae", "params": {"epochs": 2**62}}, "epochs must be at most 10,000"),
        ({"model": "mult-vae", "params": {"batch_size": 10**9}}, "batch_size must be at most"),
        ({"model": "bpr-mf", "params": {"dim": 2**40}}, "dim must be at most 65,536"),
        ({"model": "ease", "data": "all"}, "data:"),
        ({"model": "ease", "promote": "yes"}, "promote:"),
        ({"model": "ease", "promte": "never"}, "promte"),
        ({}, "model:"),
    ],
)
def test_bad_retrain_requests_are_422_with_the_reason(
    body: dict[str, object], message: str, admin: TestClient
) -> None:
    response = admin.post("/admin/retrain", json=body, headers=AUTH)
    assert response.status_code == 422
    assert message in response.json()["message"]
    assert admin.get("/admin/jobs", headers=AUTH).json()["jobs"] == []


def test_cancel_queued_job_then_conflict(admin: TestClient) -> None:
    job_id = admin.post("/admin/retrain", json={"model": "ease"}, headers=AUTH).json()["job_id"]
    cancelled = admin.post(f"/admin/jobs/{job_id}/cancel", headers=AUTH)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["finished_at"] is not None
    again = admin.post(f"/admin/jobs/{job_id}/cancel", headers=AUTH)
    assert again.status_code == 409 and "already cancelled" in again.json()["message"]


@pytest.mark.parametrize(
    ("method", "path"), [("get", "/admin/jobs/999"), ("post", "/admin/jobs/999/cancel")]
)
def test_unknown_job_is_404(method: str, path: str, admin: TestClient) -> None:
    response = _call(admin, method, path, None, AUTH)
    assert response.status_code == 404 and response.json()["message"] == "no job 999"


@pytest.mark.parametrize("job_id", ["%201", "+1", "1.0", "1_0", "%EF%BC%91"])
@pytest.mark.parametrize(("method", "suffix"), [("get", ""), ("post", "/cancel")])
def test_a_job_id_not_written_in_digits_is_a_422(
    job_id: str, method: str, suffix: str, admin: TestClient
) -> None:
    """A job id is written as a query's integers are (``QueryInt``): `` 1`` and ``+1`` read
    as job 1 and ``1_0`` as job 10, which no client means to send."""
    admin.post("/admin/retrain", json={"model": "ease"}, headers=AUTH)
    response = _call(admin, method, f"/admin/jobs/{job_id}{suffix}", None, AUTH)
    assert response.status_code == 422, response.text
    problem = response.json()["problems"][0]
    assert problem["field"] == "job_id", problem
    assert "must be a whole number written in digits" in problem["message"], problem
    assert admin.get("/admin/jobs/1", headers=AUTH).json()["status"] == "queued"
    for unknown in ("-1", str(2**63)):  # digits that name no job: not a 422
        assert _call(admin, method, f"/admin/jobs/{unknown}{suffix}", None, AUTH).status_code == 404


@pytest.mark.parametrize("limit", ["%205", "+5", "5.0", "5_0"])
def test_a_jobs_limit_not_written_in_digits_is_a_422(limit: str, admin: TestClient) -> None:
    """``limit=5_0`` listed 50 jobs: the list's integer is read as every query's is."""
    response = admin.get(f"/admin/jobs?limit={limit}", headers=AUTH)
    assert response.status_code == 422, response.text
    problem = response.json()["problems"][0]
    assert problem["field"] == "limit", problem
    assert "must be a whole number written in digits" in problem["message"], problem
    operation = admin.get("/openapi.json").json()["paths"]["/admin/jobs"]["get"]
    (parameter,) = [p for p in operation["parameters"] if p["name"] == "limit"]
    assert (parameter["schema"]["minimum"], parameter["schema"]["maximum"]) == (1, 500)


# --------------------------------------------------------------------------- models


def test_models_lists_versions_aliases_and_metrics(admin: TestClient) -> None:
    models = {m["name"]: m for m in admin.get("/admin/models", headers=AUTH).json()["models"]}
    assert {"ease", "mult-vae", "popularity", "mult-dae"} <= set(models)
    vae = models["mult-vae"]
    assert vae["aliases"] == {"production": "1"}
    assert vae["versions"][0]["aliases"] == ["production"]
    assert "ndcg@10" in vae["versions"][0]["metrics"]
    assert vae["versions"][0]["data"]["source"] == "synthetic"
    # The index's recall measured at build time, where an operator looks (60 items: 1 list).
    calibration = vae["versions"][0]["retrieval"]["calibration"]
    assert calibration["recall"] == 1.0 and calibration["tried"] == {"1": 1.0}
    assert models["ease"]["versions"][0]["retrieval"] == {}  # scored exactly
    assert models["mult-dae"]["aliases"] == {}


def _served_version(client: TestClient, model: str) -> str:
    response = client.get(f"/v1/users/u1/recommendations?k=3&model={model}")
    assert response.status_code == 200, response.text
    return str(response.json()["version"])


def _wait_for_version(client: TestClient, model: str, version: str) -> None:
    deadline = time.monotonic() + 10
    while _served_version(client, model) != version:
        assert time.monotonic() < deadline, f"server never served {model} v{version}"
        time.sleep(0.05)


def test_promote_and_rollback_are_seen_by_the_running_server(
    admin: TestClient, store_dir: Path, train: Callable[..., str]
) -> None:
    second = train(ModelStore(store_dir), "mult-vae", seed=1, promote=False)
    assert _served_version(admin, "mult-vae") == "1"

    moved = admin.post(
        "/admin/models/mult-vae/promote", json={"version": int(second)}, headers=AUTH
    )
    assert moved.status_code == 200
    assert moved.json() == {
        "model": "mult-vae",
        "alias": "production",
        "version": second,
        "previous": "1",
        "unreadable_kept_as": None,
    }
    _wait_for_version(admin, "mult-vae", second)

    back = admin.post("/admin/models/mult-vae/rollback", headers=AUTH)
    assert back.json() == {
        "model": "mult-vae",
        "alias": "production",
        "version": "1",
        "previous": second,
        "unreadable_kept_as": None,
    }
    _wait_for_version(admin, "mult-vae", "1")


def test_promote_repairs_an_alias_file_that_does_not_parse_as_the_cli_does(
    admin: TestClient, store_dir: Path, train: Callable[..., str]
) -> None:
    """Over an alias file that does not parse (a hand edit, a disk fault) the route was a
    409 telling the operator to run ``genrec models promote``, which repaired it: an
    operator with only the API (or the dashboard, which calls this route) could not get
    production back. Both now take the store's one path for an operator's promotion."""
    second = train(ModelStore(store_dir), "mult-vae", seed=1, promote=False)
    alias_file = store_dir / "mult-vae" / "aliases" / "production.json"
    alias_file.write_text("{oops")
    moved = admin.post("/admin/models/mult-vae/promote", json={"version": second}, headers=AUTH)
    assert moved.status_code == 200, moved.text
    body = moved.json()
    assert (body["version"], body["previous"]) == (second, None)  # where it was: unknown
    kept = body["unreadable_kept_as"]  # relative to the store, as every admin answer
    assert kept.startswith("mult-vae/aliases/production.json.unreadable-"), kept
    assert (store_dir / kept).read_text() == "{oops"
    assert str(store_dir) not in moved.text
    assert ModelStore(store_dir).alias_history("mult-vae") == [second]  # no history to trust
    _wait_for_version(admin, "mult-vae", second)
    listed = admin.get("/admin/models", headers=AUTH).json()["models"]
    entry = next(m for m in listed if m["name"] == "mult-vae")
    assert entry["aliases"] == {"production": second} and entry["aliases_unreadable"] is None


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("/admin/models/mult-vae/promote", {"version": "7"}, 404, "has no version 7"),
        ("/admin/models/nope/promote", {"version": "1"}, 404, "'nope' has no versions"),
        ("/admin/models/mult-vae/promote", {"version": "x"}, 422, "invalid version"),
        ("/admin/models/mult-vae/rollback", None, 409, "no previous version"),
        ("/admin/models/mult-dae/rollback", None, 404, "not set"),
        ("/admin/models/Bad Name/rollback", None, 422, "invalid model name"),
    ],
)
def test_alias_move_errors(
    path: str, body: object, status: int, message: str, admin: TestClient
) -> None:
    response = admin.post(path, json=body, headers=AUTH)
    assert response.status_code == status, response.text
    assert message in response.json()["message"]


def test_rollback_with_from_version_moves_production_once(
    admin: TestClient, store_dir: Path, train: Callable[..., str]
) -> None:
    """A rollback sent twice (a double click, a retry) with the version it rolls back from
    moves production one step, not two; without a body it rolls back as before."""
    store = ModelStore(store_dir)
    second = train(store, "mult-vae", seed=1, promote=False)
    for version in (second, "1", second):
        assert admin.post(
            "/admin/models/mult-vae/promote", json={"version": version}, headers=AUTH
        ).is_success
    assert store.alias_history("mult-vae") == [second, "1", second, "1"]

    first = admin.post(
        "/admin/models/mult-vae/rollback", json={"from_version": second}, headers=AUTH
    )
    assert first.status_code == 200, first.text
    assert (first.json()["version"], first.json()["previous"]) == ("1", second)
    again = admin.post(
        "/admin/models/mult-vae/rollback", json={"from_version": int(second)}, headers=AUTH
    )
    assert again.status_code == 409 and again.json()["error"] == "alias_changed"
    assert "is at version 1, not " + second in again.json()["message"]
    assert store.alias_state("mult-vae") == "1"

    for body in ({"from_version": None}, {}):  # the field is optional
        assert admin.post("/admin/models/mult-vae/rollback", json=body, headers=AUTH).is_success
        admin.post("/admin/models/mult-vae/promote", json={"version": "1"}, headers=AUTH)
    bare = admin.post("/admin/models/mult-vae/rollback", headers=AUTH)  # no body at all
    assert bare.status_code == 200 and bare.json()["previous"] == "1"
    typo = admin.post("/admin/models/mult-vae/rollback", json={"from": "1"}, headers=AUTH)
    assert typo.status_code == 422
    bad = admin.post("/admin/models/mult-vae/rollback", json={"from_version": "x"}, headers=AUTH)
    assert bad.status_code == 422 and "invalid version" in bad.json()["message"]
