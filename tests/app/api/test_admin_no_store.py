"""``Cache-Control: no-store`` on every ``/admin`` answer and on ``/readyz``'s details.

Admin answers hold operator data (jobs, models, experiments) behind the admin token.
Shared caches do not store answers to requests with ``Authorization``, but a browser's
cache or a misbehaving proxy may: every ``/admin`` answer says ``no-store``, errors
included, and so does ``/readyz`` when it answered the token with its details. The
``/v1`` routes (the hot path) and the public ``/readyz`` body are left as they were.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from httpx import Response

import app.api.routes.admin as admin_routes
from tests.app.conftest import ClientFactory

TOKEN = "t" * 20
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _no_store(answer: Response) -> None:
    assert answer.headers.get("cache-control") == "no-store", (
        answer.request.method,
        answer.request.url,
        answer.status_code,
        dict(answer.headers),
    )


@pytest.fixture
def admin(make_client: ClientFactory) -> TestClient:
    return make_client(admin_token=TOKEN, admin_max_failures=2)


def test_admin_answers_and_errors_are_not_stored(admin: TestClient) -> None:
    answers = {
        200: admin.get("/admin/models", headers=AUTH),
        202: admin.post("/admin/retrain", json={"model": "ease"}, headers=AUTH),
        404: admin.get("/admin/jobs/999", headers=AUTH),
        405: admin.get("/admin/models/ease/rollback", headers=AUTH),
        409: admin.post("/admin/models/ease/rollback", json={}, headers=AUTH),
        422: admin.get("/admin/jobs", params={"limit": "many"}, headers=AUTH),
    }
    for status, answer in answers.items():
        assert answer.status_code == status, (status, answer.text)
        _no_store(answer)
    unknown = admin.get("/admin/no-such-thing", headers=AUTH)  # no route: the router's 404
    assert unknown.status_code == 404
    _no_store(unknown)
    for _ in range(2):
        refused = admin.get("/admin/jobs", headers={"Authorization": "Bearer wrong"})
        assert refused.status_code == 401
        _no_store(refused)
    locked = admin.get("/admin/jobs", headers=AUTH)
    assert locked.status_code == 429
    _no_store(locked)


def test_a_disabled_admin_api_and_a_database_outage_are_not_stored(
    make_client: ClientFactory, tmp_path: Path
) -> None:
    disabled = make_client().get("/admin/jobs", headers=AUTH)
    assert disabled.status_code == 403
    _no_store(disabled)
    down = make_client(
        admin_token=TOKEN,
        auto_migrate=False,
        database_url=f"sqlite:///{tmp_path}/no-such-folder/genrec.db",
    )
    unavailable = down.get("/admin/jobs", headers=AUTH)
    assert unavailable.status_code == 503, unavailable.text
    _no_store(unavailable)


def test_a_server_error_under_admin_is_not_stored(
    admin: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 500 is answered outside every middleware (Starlette's ``ServerErrorMiddleware``)."""

    def broken(*args: object) -> object:
        raise RuntimeError("boom")

    monkeypatch.setattr(admin_routes, "_model_out", broken)
    answer = admin.get("/admin/models", headers=AUTH)
    assert answer.status_code == 500
    _no_store(answer)


def test_readyz_details_are_not_stored_the_public_body_and_v1_are_unchanged(
    admin: TestClient,
) -> None:
    details = admin.get("/readyz", headers=AUTH)
    assert details.status_code == 200 and "backend" in details.json()["cache"]
    _no_store(details)
    _no_store(admin.head("/readyz", headers=AUTH))
    public = admin.get("/readyz")
    assert public.status_code == 200 and "backend" not in public.json()["cache"]
    assert "cache-control" not in public.headers
    for path in ("/v1/users/u1/recommendations", "/healthz", "/v1/items/1/similar"):
        answer = admin.get(path)
        assert answer.status_code == 200 and "cache-control" not in answer.headers, path


def test_admin_answers_are_not_stored_under_a_root_path(admin: TestClient) -> None:
    """Under ``uvicorn --root-path /genrec`` the scope's path holds the root path; the
    check follows the path the router routes, as the dashboard's headers do."""
    root_path = "/genrec"
    client = TestClient(admin.app, root_path=root_path, raise_server_exceptions=False)
    answer = client.get(f"{root_path}/admin/models", headers=AUTH)
    assert answer.status_code == 200
    _no_store(answer)
    # (No ranking here: this second client's event loop is not the one the app's batchers
    # were started on.)
    api = client.get(f"{root_path}/v1/items/1")
    assert api.status_code in (200, 404) and "cache-control" not in api.headers
