"""Every error the API answers is documented in ``/openapi.json`` (issue #16, item 4).

Each probe provokes one documented failure on the app over the real Postgres
and Redis and checks that the operation's OpenAPI entry lists the status with
the error body (``ErrorResponse``) and that the body matches it. The fuzzer
(``tests/app/test_schemathesis.py``) checks the same with
``status_code_conformance`` on generated input.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.schemas import ErrorResponse
from tests.app.api.conftest import ADMIN
from tests.app.conftest import ClientFactory

pytestmark = pytest.mark.integration

ERROR_REF = "#/components/schemas/ErrorResponse"


def _operation(schema: dict[str, Any], method: str, url: str) -> dict[str, Any]:
    """The OpenAPI operation whose path template matches ``url``."""
    path = url.split("?")[0]
    for template, operations in schema["paths"].items():
        pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
        if re.match(pattern, path) and method.lower() in operations:
            return operations[method.lower()]
    raise AssertionError(f"{method} {url} is not in the OpenAPI document")


def _assert_documented(client: TestClient, method: str, url: str, response: Any) -> None:
    operation = _operation(client.get("/openapi.json").json(), method, url)
    status = str(response.status_code)
    assert status in operation["responses"], (method, url, status, list(operation["responses"]))
    content = operation["responses"][status]["content"]["application/json"]["schema"]
    assert content == {"$ref": ERROR_REF}, (method, url, status, content)
    ErrorResponse.model_validate(response.json())


#: (method, url, JSON body, with the admin token, expected status, expected error code)
PROBES = [
    ("PUT", "/v1/items/x", {"title": "t"}, False, 401, "unauthorized"),
    ("DELETE", "/v1/items/x", None, False, 401, "unauthorized"),
    ("DELETE", "/v1/items/never-added", None, True, 404, "unknown_item"),
    ("DELETE", "/v1/users/x", None, False, 401, "unauthorized"),
    ("DELETE", f"/v1/users/{'x' * 300}", None, True, 422, "invalid_id"),
    ("GET", "/admin/jobs", None, False, 401, "unauthorized"),
    ("POST", "/admin/retrain", {"model": "ease"}, False, 401, "unauthorized"),
    ("GET", "/admin/models", None, False, 401, "unauthorized"),
    ("POST", "/admin/models/ease/rollback", None, False, 401, "unauthorized"),
    ("GET", "/v1/items/never-added", None, False, 404, "unknown_item"),
    ("GET", "/v1/items/99999/similar", None, False, 404, "unknown_item"),
    ("GET", "/v1/users/u1/recommendations?model=nope", None, False, 404, "unknown_model"),
    ("POST", "/v1/recommendations", {"model": "nope"}, False, 404, "unknown_model"),
    (
        "POST",
        "/v1/predictions",
        {"user_id": "u1", "item_ids": ["1"], "model": "nope"},
        False,
        404,
        "unknown_model",
    ),
    ("GET", "/admin/jobs/424242", None, True, 404, "job_not_found"),
    ("POST", "/admin/jobs/424242/cancel", None, True, 404, "job_not_found"),
    ("POST", "/admin/models/ease/promote", {"version": "7"}, True, 404, "not_found"),
    ("POST", "/admin/models/ease/rollback", None, True, 409, "nothing_to_roll_back"),
    ("POST", "/v1/interactions", {"user_id": "u1"}, False, 422, "invalid_request"),
    ("POST", "/admin/retrain", {"model": "no-such-model"}, True, 422, "invalid_request"),
]


@pytest.mark.parametrize(("method", "url", "body", "admin", "status", "code"), PROBES)
def test_each_error_status_is_documented_with_the_error_body(
    pg_client: TestClient,
    method: str,
    url: str,
    body: Any,
    admin: bool,
    status: int,
    code: str,
) -> None:
    response = pg_client.request(method, url, json=body, headers=ADMIN if admin else {})
    assert (response.status_code, response.json()["error"]) == (status, code), response.text
    _assert_documented(pg_client, method, url, response)


def test_job_conflict_is_documented(pg_client: TestClient) -> None:
    job = pg_client.post("/admin/retrain", json={"model": "ease"}, headers=ADMIN).json()["job_id"]
    url = f"/admin/jobs/{job}/cancel"
    assert pg_client.post(url, headers=ADMIN).status_code == 200
    again = pg_client.post(url, headers=ADMIN)
    assert (again.status_code, again.json()["error"]) == (409, "job_conflict")
    _assert_documented(pg_client, "POST", url, again)


def test_version_refused_is_documented(
    make_client: ClientFactory, store_dir: Path, postgres_url: str
) -> None:
    """A corrupt version is refused (409) and the alias stays where it was."""
    (store_dir / "mult-dae" / "versions" / "1" / "tensors.safetensors").write_bytes(b"broken")
    client = make_client(database_url=postgres_url, admin_token="t")
    url = "/admin/models/mult-dae/promote"
    response = client.post(url, json={"version": 1}, headers={"Authorization": "Bearer t"})
    assert (response.status_code, response.json()["error"]) == (409, "version_refused")
    _assert_documented(client, "POST", url, response)


def test_admin_disabled_is_documented(make_client: ClientFactory, postgres_url: str) -> None:
    client = make_client(database_url=postgres_url, admin_token=None)
    for method, url, body in (
        ("GET", "/admin/jobs", None),
        ("PUT", "/v1/items/x", {}),
        ("DELETE", "/v1/items/x", None),
        ("DELETE", "/v1/users/x", None),
    ):
        response = client.request(method, url, json=body, headers=ADMIN)
        assert (response.status_code, response.json()["error"]) == (403, "admin_disabled")
        _assert_documented(client, method, url, response)


def test_database_down_is_documented(make_client: ClientFactory) -> None:
    # Nothing listens on port 1: every connection attempt is refused at once.
    client = make_client(database_url="postgresql://postgres@127.0.0.1:1/genrec")
    response = client.post("/v1/interactions", json={"user_id": "u1", "item_id": "1"})
    assert (response.status_code, response.json()["error"]) == (503, "database_unavailable")
    _assert_documented(client, "POST", "/v1/interactions", response)
    admin = make_client(database_url="postgresql://postgres@127.0.0.1:1/genrec", admin_token="t")
    response = admin.delete("/v1/users/u1", headers={"Authorization": "Bearer t"})
    assert (response.status_code, response.json()["error"]) == (503, "database_unavailable")
    _assert_documented(admin, "DELETE", "/v1/users/u1", response)


def test_the_admin_lockout_is_documented(make_client: ClientFactory, postgres_url: str) -> None:
    """Every route behind the admin token answers 429 once an address has sent too many
    wrong tokens (``app.core.auth_throttle``); it was in no operation's responses, so the
    fuzzer's negative cases failed ``status_code_conformance`` whenever they got there."""
    client = make_client(database_url=postgres_url, admin_token="t", admin_max_failures=1)
    wrong = {"Authorization": "Bearer wrong"}
    assert client.get("/admin/experiments", headers=wrong).status_code == 401
    for method, url, body in (
        ("GET", "/admin/experiments", None),
        ("POST", "/admin/experiments", {}),
        ("GET", "/admin/experiments/ab1", None),
        ("POST", "/admin/experiments/ab1/stop", None),
        ("POST", "/admin/tune", {}),
        ("PUT", "/v1/items/x", {"title": "t"}),
        ("DELETE", "/v1/users/x", None),
    ):
        response = client.request(method, url, json=body, headers=wrong)
        assert (response.status_code, response.json()["error"]) == (429, "too_many_failures")
        _assert_documented(client, method, url, response)
