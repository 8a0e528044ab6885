"""The dashboard against the hunt's findings: framing, caching, double submits, two login
tabs, expiry mid-page, error pages, database outages (in process; the browser side is in
tests/e2e/dashboard/test_resilience_browser.py)."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from tests.app.conftest import ClientFactory
from tests.app.dashboard.test_pages import TOKEN, _login


@pytest.fixture
def dash(make_client: ClientFactory) -> TestClient:
    return make_client(admin_token=TOKEN, default_model="ease")


# --------------------------------------------------------------------------- headers


def test_pages_cannot_be_framed_or_cached(dash: TestClient) -> None:
    login = dash.get("/dashboard/login")
    redirect = dash.get("/dashboard/overview", follow_redirects=False)
    assert redirect.status_code == 303
    _login(dash)
    for answer in (
        login,
        dash.get("/dashboard/overview"),
        dash.get("/dashboard/overview/panel", headers={"HX-Request": "true"}),
        dash.get("/dashboard/explore?user=u1"),
        redirect,
    ):
        assert answer.headers["x-frame-options"] == "DENY", answer.url
        csp = answer.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert answer.headers["cache-control"] == "no-store", answer.url
    static = dash.get("/dashboard/static/vendor/htmx.min.js")
    assert static.status_code == 200 and "cache-control" not in static.headers
    assert static.headers["x-frame-options"] == "DENY"
    for outside in ("/docs", "/healthz"):  # Swagger UI's inline script keeps working
        answer = dash.get(outside)
        assert "content-security-policy" not in answer.headers and "x-frame-options" not in (
            answer.headers
        )


def test_pages_have_no_inline_script_or_style(dash: TestClient) -> None:
    """What the CSP would block: inline scripts (data blocks are fine), style attributes,
    event-handler attributes."""
    _login(dash)
    for path in (
        "/dashboard/overview",
        "/dashboard/models",
        "/dashboard/jobs",
        "/dashboard/experiments",
        "/dashboard/explore?user=u1&item=3",
        "/dashboard/catalog?q=Item",
        "/dashboard/models/ease/versions/1",
    ):
        html = dash.get(path).text
        for tag in re.findall(r"<script\b[^>]*>", html):
            assert "src=" in tag or 'type="application/json"' in tag, (path, tag)
        assert not re.search(r"\sstyle=|\son[a-z]+=", html), path
        assert 'rel="icon"' in html  # no /favicon.ico request (a 404 on every page)
    assert dash.get("/dashboard/static/favicon.svg").status_code == 200


# --------------------------------------------------------------------------- error pages


def test_dashboard_errors_are_pages_with_the_same_status(dash: TestClient) -> None:
    """Unknown pages, a GET on a form's address, an invalid id: a dashboard page (with the
    navigation when logged in), not the API's JSON; the API and static files keep JSON."""
    anonymous = dash.get("/dashboard/no-such-page")
    assert anonymous.status_code == 404 and "text/html" in anonymous.headers["content-type"]
    assert "There is no dashboard page at /dashboard/no-such-page" in anonymous.text
    assert 'aria-label="Dashboard"' not in anonymous.text  # no navigation without a session
    _login(dash)
    cases = [
        ("/dashboard/no-such-page", 404, "There is no dashboard page"),
        ("/dashboard/models/ease/rollback", 405, "submission (POST); it is not a page"),
        ("/dashboard/jobs/list/extra", 404, "There is no dashboard page"),
        ("/dashboard/explore?user=" + "u" * 300, 422, "at most 256 characters"),
        ("/dashboard/catalog?q=" + "q" * 300, 422, "at most 256 characters"),
        ("/dashboard/catalog/items/a%00b", 422, "NUL"),
        ("/dashboard/explore?item=%00", 422, "NUL"),
    ]
    for path, status, text in cases:
        answer = dash.get(path)
        assert answer.status_code == status, (path, answer.text[:500])
        assert "text/html" in answer.headers["content-type"], path
        assert text in answer.text, (path, answer.text[:2000])
        assert 'aria-label="Dashboard"' in answer.text and '"request_id"' not in answer.text
        assert answer.headers["cache-control"] == "no-store"
    assert dash.get("/dashboard/models/ease/promote").headers["allow"] == "POST"
    fragment = dash.get("/dashboard/experiments/%00/results", headers={"HX-Request": "true"})
    assert fragment.status_code == 422 and "<html" not in fragment.text and "NUL" in fragment.text
    for api in ("/v1/no-such", "/admin/models/ease/rollback", "/dashboard/static/nope.js"):
        answer = dash.get(api)
        assert answer.status_code in (401, 404, 405) and answer.json()["error"], api
