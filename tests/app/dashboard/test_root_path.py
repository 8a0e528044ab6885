"""Every address the dashboard writes is under the root path (``uvicorn --root-path``).

Behind a proxy that serves genrec at ``/genrec`` and strips the prefix, the browser
must ask for ``/genrec/dashboard/...``: links, form actions, htmx polls, redirects,
static assets and the cookies' ``Path`` were all fixed to ``/dashboard``, so the
browser left the proxy's prefix at the first click (or never loaded the CSS), and the
session cookie was never sent back. In process here (Starlette's TestClient puts the
root path in the scope as uvicorn does); through a real proxy, uvicorn and Chromium in
``tests/e2e/dashboard/test_root_path_browser.py``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from app.main import create_app
from tests.app.conftest import ClientFactory, embedded_settings
from tests.app.dashboard.test_pages import TOKEN, _csrf

ROOT = "/genrec"
#: Every address an HTML answer hands the browser.
ADDRESS = re.compile(r'\b(?:href|src|action|hx-get|hx-post)="([^"#][^"]*)"')


@pytest.fixture
def under_root(store_dir: Path, tmp_path: Path) -> Iterator[TestClient]:
    """The app's only client, so the lifespan and the pages' batchers share its loop."""
    settings = embedded_settings(
        admin_token=TOKEN,
        default_model="ease",
        store_dir=store_dir,
        database_url=f"sqlite:///{tmp_path}/root.db",
    )
    app = create_app(settings)
    with TestClient(app, root_path=ROOT, raise_server_exceptions=False) as client:
        yield client


def _addresses(answer: Response) -> list[str]:
    found = ADDRESS.findall(answer.text)
    assert found, answer.text[:500]
    return found


def _all_under_root(answer: Response) -> None:
    outside = [a for a in _addresses(answer) if not a.startswith(f"{ROOT}/dashboard/")]
    assert not outside, (answer.url, outside)


def _cookie_paths(answer: Response) -> set[str]:
    return set(re.findall(r"[Pp]ath=([^;]+)", "\n".join(answer.headers.get_list("set-cookie"))))


def _log_in(client: TestClient) -> Response:
    form = client.get(f"{ROOT}/dashboard/login")
    _all_under_root(form)
    assert _cookie_paths(form) == {f"{ROOT}/dashboard"}  # the login form's nonce cookie
    nonce = re.search(r'name="nonce" value="([^"]+)"', form.text)
    assert nonce
    return client.post(
        f"{ROOT}/dashboard/login",
        data={"token": TOKEN, "nonce": nonce.group(1), "next": "/dashboard/jobs"},
        follow_redirects=False,
    )


def test_links_forms_assets_redirects_and_cookies_are_under_the_root_path(
    under_root: TestClient,
) -> None:
    bounced = under_root.get(f"{ROOT}/dashboard/models", follow_redirects=False)
    assert bounced.headers["location"] == f"{ROOT}/dashboard/login?next=/dashboard/models"
    logged_in = _log_in(under_root)
    assert (logged_in.status_code, logged_in.headers["location"]) == (
        303,
        f"{ROOT}/dashboard/jobs",
    )
    assert _cookie_paths(logged_in) == {f"{ROOT}/dashboard"}
    index = under_root.get(f"{ROOT}/dashboard", follow_redirects=False)
    assert index.headers["location"] == f"{ROOT}/dashboard/overview"
    for page in ("overview", "models", "jobs", "experiments", "explore?user=u1", "catalog"):
        answer = under_root.get(f"{ROOT}/dashboard/{page}")
        assert answer.status_code == 200, page
        _all_under_root(answer)
    missing = under_root.get(f"{ROOT}/dashboard/no-such-page")
    assert missing.status_code == 404
    _all_under_root(missing)
    for asset in _addresses(under_root.get(f"{ROOT}/dashboard/overview")):
        if "/static/" in asset:
            assert under_root.get(asset).status_code == 200, asset

    # An action's Post/Redirect/Get, and the notice cookie it leaves.
    jobs = under_root.get(f"{ROOT}/dashboard/jobs")
    queued = under_root.post(
        f"{ROOT}/dashboard/jobs",
        data={"model": "ease", "params": "{}", "csrf_token": _csrf(jobs.text)},
        follow_redirects=False,
    )
    assert (queued.status_code, queued.headers["location"]) == (303, f"{ROOT}/dashboard/jobs")
    assert _cookie_paths(queued) == {f"{ROOT}/dashboard"}
    shown = under_root.get(f"{ROOT}/dashboard/jobs")
    assert "queued" in shown.text.lower() and _cookie_paths(shown) == {f"{ROOT}/dashboard"}

    logout = under_root.post(
        f"{ROOT}/dashboard/logout",
        data={"csrf_token": _csrf(shown.text)},
        follow_redirects=False,
    )
    assert (logout.status_code, logout.headers["location"]) == (303, f"{ROOT}/dashboard/login")
    assert _cookie_paths(logout) == {f"{ROOT}/dashboard"}  # the deletion hits the cookie


def test_a_poll_after_expiry_is_sent_to_the_login_form_under_the_root_path(
    under_root: TestClient,
) -> None:
    poll = under_root.get(
        f"{ROOT}/dashboard/overview/panel",
        headers={
            "HX-Request": "true",
            "HX-Current-URL": f"http://testserver{ROOT}/dashboard/models",
        },
    )
    assert (poll.status_code, poll.headers["HX-Redirect"]) == (
        401,
        f"{ROOT}/dashboard/login?next=/dashboard/models",
    )


def test_without_a_root_path_the_addresses_are_as_before(make_client: ClientFactory) -> None:
    client = make_client(admin_token=TOKEN)
    form = client.get("/dashboard/login")
    assert all(a.startswith("/dashboard/") for a in _addresses(form))
    assert _cookie_paths(form) == {"/dashboard"}
