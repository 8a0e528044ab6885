"""``GENREC_ALLOWED_HOSTS`` at the HTTP edge: a request whose ``Host`` names another host
(a DNS-rebinding page's, say) is a 400 before anything else answers it, health checks
included; the API's JSON error, the dashboard's error page under ``/dashboard``. The
default ``*`` changes nothing."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from tests.app.conftest import ClientFactory

TOKEN = "t" * 20


def _refused_as_api(answer: Response, host: str) -> None:
    assert answer.status_code == 400, (answer.request.url, answer.text)
    body = answer.json()
    assert body["error"] == "invalid_host", body
    assert f"'{host}'" in body["message"] and "GENREC_ALLOWED_HOSTS" in body["message"], body
    assert body["request_id"] == answer.headers["x-request-id"]


@pytest.fixture
def exact(make_client: ClientFactory) -> TestClient:
    return make_client(allowed_hosts=("api.example.com", "testserver"), admin_token=TOKEN)


def test_an_allowed_host_is_served(exact: TestClient) -> None:
    for host in ("api.example.com", "api.example.com:8000", "API.Example.COM", "testserver"):
        answer = exact.get("/v1/users/u1/recommendations", headers={"Host": host})
        assert answer.status_code == 200, (host, answer.text)
    assert exact.get("/healthz").status_code == 200


def test_another_host_is_a_400_everywhere_health_checks_included(exact: TestClient) -> None:
    evil = {"Host": "rebind.evil.example"}
    for path in ("/v1/users/u1/recommendations", "/healthz", "/readyz", "/metrics", "/docs"):
        _refused_as_api(exact.get(path, headers=evil), "rebind.evil.example")
    write = exact.post("/v1/interactions", json={"user_id": "u1", "item_id": "1"}, headers=evil)
    _refused_as_api(write, "rebind.evil.example")
    admin = exact.get(
        "/admin/jobs", headers={**evil, "Authorization": f"Bearer {TOKEN}"}
    )  # refused before the token is even looked at, and still not cached
    _refused_as_api(admin, "rebind.evil.example")
    assert admin.headers["cache-control"] == "no-store"
    # Nothing was written through the refused request.
    stored = exact.get("/admin/jobs", headers={"Authorization": f"Bearer {TOKEN}"})
    assert stored.status_code == 200 and stored.json()["jobs"] == []
    _refused_as_api(exact.get("/healthz", headers={"Host": "10.0.0.5:8000"}), "10.0.0.5")


def test_a_missing_or_malformed_host_is_refused(exact: TestClient) -> None:
    answer = exact.get("/healthz", headers={"Host": "a b"})
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_host"


def test_a_wildcard_allows_subdomains_only(make_client: ClientFactory) -> None:
    client = make_client(allowed_hosts=("*.example.com",))
    for host in ("api.example.com", "a.b.example.com:443"):
        assert client.get("/healthz", headers={"Host": host}).status_code == 200, host
    for host in ("example.com", "evilexample.com", "example.com.evil.example"):
        _refused_as_api(client.get("/healthz", headers={"Host": host}), host)


def test_the_dashboard_refuses_with_its_error_page(make_client: ClientFactory) -> None:
    client = make_client(allowed_hosts=("api.example.com",), admin_token=TOKEN)
    answer = client.get("/dashboard/login", headers={"Host": "rebind.evil.example"})
    assert answer.status_code == 400 and "text/html" in answer.headers["content-type"]
    assert "GENREC_ALLOWED_HOSTS" in answer.text and 'name="nonce"' not in answer.text
    assert "Bad request" in answer.text  # its heading, not the generic "Problem"
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["cache-control"] == "no-store"
    page = client.get("/dashboard/login", headers={"Host": "api.example.com"})
    assert page.status_code == 200 and 'name="nonce"' in page.text


def test_any_host_by_default(make_client: ClientFactory) -> None:
    """``*`` (the default) is today's behaviour: no check at all."""
    client = make_client()
    for host in ("rebind.evil.example", "10.0.0.5:8000", "testserver"):
        assert client.get("/healthz", headers={"Host": host}).status_code == 200, host
