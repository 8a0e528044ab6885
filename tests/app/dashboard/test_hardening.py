"""The dashboard against the hunt's findings: framing, caching, double submits, two login
tabs, expiry mid-page, error pages, database outages (in process; the browser side is in
tests/e2e/dashboard/test_resilience_browser.py)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError

import app.dashboard.auth as auth
from models_store import ModelStore
from tests.app.conftest import ClientFactory
from tests.app.dashboard.test_pages import TOKEN, _csrf, _login


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
    # Outside the dashboard its headers are not set: Swagger UI's inline script keeps
    # working (``/docs`` sets only framing headers of its own, ``app.api.docs_page``).
    docs = dash.get("/docs").headers
    assert docs["content-security-policy"] == "frame-ancestors 'none'"
    health = dash.get("/healthz").headers
    assert "content-security-policy" not in health and "x-frame-options" not in health


def test_no_answer_hands_its_address_to_another_site(dash: TestClient) -> None:
    """``Referrer-Policy: same-origin``: a dashboard address holds user and item ids,
    experiment names and searches, which a browser sent on to any other site a page
    linked or loaded (its default sends the origin, older ones the whole URL). Not
    ``no-referrer``: a form posted after the session expired is sent back to its page
    by its same-origin ``Referer`` (``auth.page_to_return_to``)."""
    login = dash.get("/dashboard/login")
    redirect = dash.get("/dashboard/overview", follow_redirects=False)
    _login(dash)
    for answer in (
        login,
        redirect,
        dash.get("/dashboard/overview"),
        dash.get("/dashboard/overview/panel", headers={"HX-Request": "true"}),
        dash.get("/dashboard/explore?user=u1"),
        dash.get("/dashboard/no-such-page"),
        dash.get("/dashboard/static/dashboard.css"),
    ):
        assert answer.headers.get("referrer-policy") == "same-origin", answer.url


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


# --------------------------------------------------------------------------- login


def _nonce(html: str) -> str:
    match = re.search(r'name="nonce" value="([^"]+)"', html)
    assert match, html[:2000]
    return match.group(1)


def test_several_login_forms_of_one_browser_all_work(
    dash: TestClient, make_client: ClientFactory
) -> None:
    """Two login tabs: the second form used to replace the first one's nonce cookie, so the
    first tab's login failed with "The form expired"."""
    first = _nonce(dash.get("/dashboard/login").text)
    second = _nonce(dash.get("/dashboard/login").text)
    assert first != second
    answer = dash.post(
        "/dashboard/login", data={"token": TOKEN, "nonce": first}, follow_redirects=False
    )
    assert answer.status_code == 303, answer.text[:500]
    dash.cookies.delete("genrec_dashboard", path="/dashboard")
    answer = dash.post(
        "/dashboard/login", data={"token": TOKEN, "nonce": second}, follow_redirects=False
    )
    assert answer.status_code == 303  # the other tab, after the first one logged in

    # Still double submit: a nonce works only with the login cookie of the browser that got
    # it (another site can read neither), and only if this server signed it.
    other = make_client(admin_token=TOKEN, default_model="ease")
    other.get("/dashboard/login")
    for nonce in (first, "made-up", ""):
        refused = other.post(
            "/dashboard/login", data={"token": TOKEN, "nonce": nonce}, follow_redirects=False
        )
        assert refused.status_code == 403 and "The form expired" in refused.text
    other.cookies.clear()
    bare = other.post("/dashboard/login", data={"token": TOKEN, "nonce": first})
    assert bare.status_code == 403


def test_logging_in_in_a_second_tab_keeps_the_first_tabs_session(dash: TestClient) -> None:
    """Two login tabs: the second login used to replace the session cookie the first tab's
    pages were rendered for, so every form there was refused for its CSRF token."""
    second_form = _nonce(dash.get("/dashboard/login").text)
    assert _login(dash) == 303  # the first tab
    first_tab = _csrf(dash.get("/dashboard/models").text)
    answer = dash.post(
        "/dashboard/login",
        data={"token": TOKEN, "nonce": second_form, "next": "/dashboard/jobs"},
        follow_redirects=False,
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/dashboard/jobs"
    assert "genrec_dashboard=" in answer.headers["set-cookie"]  # renewed: a fresh lifetime
    assert _csrf(dash.get("/dashboard/jobs").text) == first_tab  # one session, both tabs
    wrong = dash.post("/dashboard/login", data={"token": "wrong", "nonce": second_form})
    assert wrong.status_code == 401  # still the token is checked
    out = dash.post("/dashboard/logout", data={"csrf_token": first_tab}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/dashboard/login"
    # Logged out: the next login starts a new session (a revoked one is never reused).
    assert _login(dash) == 303
    assert _csrf(dash.get("/dashboard/models").text) != first_tab


def test_two_login_forms_loaded_at_the_same_moment_both_work(dash: TestClient) -> None:
    """Two tabs loading the login form at once, before the browser had a login cookie: each
    answer set a new browser id, the last one stayed, and the other tab's form was "expired".
    A form the browser says came from the dashboard's own page is enough."""
    first = _nonce(dash.get("/dashboard/login").text)
    dash.cookies.clear()  # the second request went out before the first answer's cookie came
    dash.get("/dashboard/login")  # its cookie (another browser id) is the one kept
    for site in (None, "cross-site", "same-site", "none"):  # another site's page, a typed URL
        headers = {"Sec-Fetch-Site": site} if site else {}
        refused = dash.post(
            "/dashboard/login", data={"token": TOKEN, "nonce": first}, headers=headers
        )
        assert refused.status_code == 403 and "The form expired" in refused.text
    forged = dash.post(
        "/dashboard/login",
        data={"token": TOKEN, "nonce": "made-up"},
        headers={"Sec-Fetch-Site": "same-origin"},
    )
    assert forged.status_code == 403  # the nonce must still be this server's
    answer = dash.post(
        "/dashboard/login",
        data={"token": TOKEN, "nonce": first},
        headers={"Sec-Fetch-Site": "same-origin"},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text[:500]


# --------------------------------------------------------------------------- next


def test_an_expired_session_comes_back_to_its_page_after_login(dash: TestClient) -> None:
    page = "/dashboard/explore?user=u1&item=3"
    answer = dash.get(page, follow_redirects=False)
    assert answer.status_code == 303
    assert (
        answer.headers["location"]
        == "/dashboard/login?next=/dashboard/explore%3Fuser%3Du1%26item%3D3"
    )
    form = dash.get(answer.headers["location"]).text
    assert 'name="next" value="/dashboard/explore?user=u1&amp;item=3"' in form
    done = dash.post(
        "/dashboard/login",
        data={"token": TOKEN, "nonce": _nonce(form), "next": "/dashboard/explore?user=u1&item=3"},
        follow_redirects=False,
    )
    assert (done.status_code, done.headers["location"]) == (303, page)
    again = dash.get("/dashboard/login?next=/dashboard/jobs", follow_redirects=False)
    assert again.headers["location"] == "/dashboard/jobs"  # logged in already


def test_a_poll_or_a_form_after_expiry_returns_to_the_page_it_came_from(
    dash: TestClient,
) -> None:
    base = "http://testserver"
    poll = dash.get(
        "/dashboard/jobs/list",
        headers={"HX-Request": "true", "HX-Current-URL": f"{base}/dashboard/jobs"},
    )
    assert (poll.status_code, poll.headers["HX-Redirect"]) == (
        401,
        "/dashboard/login?next=/dashboard/jobs",
    )
    post = dash.post(
        "/dashboard/models/ease/rollback",
        headers={"Referer": f"{base}/dashboard/models"},
        follow_redirects=False,
    )
    assert post.headers["location"] == "/dashboard/login?next=/dashboard/models"
    foreign = dash.post(
        "/dashboard/models/ease/rollback",
        headers={"Referer": "http://elsewhere.example/dashboard/models"},
        follow_redirects=False,
    )
    assert foreign.headers["location"] == "/dashboard/login"


@pytest.mark.parametrize(
    "next_path",
    [
        "https://evil.example/dashboard/x",
        "//evil.example/dashboard/x",
        "/\\evil.example/dashboard/x",
        "\\\\evil.example",
        "/dashboard/../admin/models",
        "/dashboard/%2e%2e/docs",
        "/docs",
        "javascript:alert(1)",
        "/dashboard/login",
        "/dashboard/static/dashboard.js",
        "/dashboard/a b",
        "/dashboard/x\r\nSet-Cookie: a=b",
    ],
)
def test_next_never_leaves_the_dashboard(dash: TestClient, next_path: str) -> None:
    form = dash.get("/dashboard/login", params={"next": next_path}).text
    assert 'name="next"' not in form
    done = dash.post(
        "/dashboard/login",
        data={"token": TOKEN, "nonce": _nonce(form), "next": next_path},
        follow_redirects=False,
    )
    assert (done.status_code, done.headers["location"]) == (303, "/dashboard/overview")


# --------------------------------------------------------------------------- actions


def _notice(html: str) -> str | None:
    match = re.search(r'<p class="notice" role="status">([^<]*)</p>', html)
    return match.group(1) if match else None


def test_actions_redirect_and_their_notice_is_shown_once(dash: TestClient) -> None:
    """Post/Redirect/Get: reloading the page an action answered with repeats nothing."""
    _login(dash)
    token = _csrf(dash.get("/dashboard/jobs").text)
    form = {"model": "ease", "promote": "never", "params": "{}", "csrf_token": token}
    queued = dash.post("/dashboard/jobs", data=form, follow_redirects=False)
    assert (queued.status_code, queued.headers["location"]) == (303, "/dashboard/jobs")
    page = dash.get("/dashboard/jobs")
    assert (_notice(page.text) or "").startswith("Job 1 queued (ease)")
    assert 'data-job-id="1"' in page.text
    reloaded = dash.get("/dashboard/jobs")
    assert _notice(reloaded.text) is None and 'data-job-id="2"' not in reloaded.text
    panel = dash.get("/dashboard/jobs/list")  # a fragment never eats a notice
    assert panel.status_code == 200

    promoted = dash.post(
        "/dashboard/models/ease/promote",
        data={"version": "1", "csrf_token": token},
        follow_redirects=False,
    )
    assert promoted.headers["location"] == "/dashboard/models#model-ease"
    dash.get("/dashboard/jobs/list")
    assert _notice(dash.get("/dashboard/models").text) == (
        "ease: production now points at v1 (was v1)."
    )

    refused = dash.post("/dashboard/jobs", data={**form, "params": "{"}, follow_redirects=False)
    assert refused.status_code == 422 and "not JSON" in refused.text  # the form again


def test_a_notice_belongs_to_its_session(dash: TestClient, make_client: ClientFactory) -> None:
    """Signed for the session that acted: a copied or planted cookie shows nothing."""
    _login(dash)
    token = _csrf(dash.get("/dashboard/models").text)
    promoted = dash.post(
        "/dashboard/models/ease/promote",
        data={"version": "1", "csrf_token": token},
        follow_redirects=False,
    )
    flash = promoted.cookies["genrec_dashboard_flash"]
    other = make_client(admin_token=TOKEN, default_model="ease")
    _login(other)
    other.cookies.set("genrec_dashboard_flash", flash, path="/dashboard")
    assert _notice(other.get("/dashboard/models").text) is None
    other.cookies.set("genrec_dashboard_flash", "Production was deleted!", path="/dashboard")
    assert _notice(other.get("/dashboard/models").text) is None


def test_a_rollback_sent_twice_moves_production_once(
    dash: TestClient, store_dir: Path, train: Callable[..., str]
) -> None:
    store = ModelStore(store_dir)
    second = train(store, "ease", seed=1, promote=False)
    for version in (second, "1", second):
        store.promote("ease", version)
    _login(dash)
    page = dash.get("/dashboard/models").text
    assert 'name="from_version" value="' + second + '"' in page
    assert f"production goes from v{second} back to v1. Continue?" in page  # data-confirm
    token = _csrf(page)
    form = {"from_version": second, "csrf_token": token}
    first = dash.post("/dashboard/models/ease/rollback", data=form, follow_redirects=False)
    assert (first.status_code, first.headers["location"]) == (303, "/dashboard/models#model-ease")
    assert store.alias_state("ease") == "1"
    again = dash.post("/dashboard/models/ease/rollback", data=form)  # the second click
    assert again.status_code == 409
    assert f"production is no longer v{second}" in again.text
    assert "nothing was rolled back" in again.text
    assert store.alias_history("ease") == ["1", second, "1"]
    stale = dash.post("/dashboard/models/ease/rollback", data={"csrf_token": token})
    assert stale.status_code == 409 and store.alias_state("ease") == "1"


def test_experiment_create_and_stop_redirect(make_client: ClientFactory) -> None:
    client = make_client(admin_token=TOKEN, default_model="ease")
    _login(client)
    token = _csrf(client.get("/dashboard/experiments").text)
    form = {
        "name": "ab-prg",
        "variant_name": ["control", "ease"],
        "variant_model": ["popularity", "ease"],
        "variant_version": ["", ""],
        "variant_weight": ["1", "1"],
        "csrf_token": token,
    }
    created = client.post("/dashboard/experiments", data=form, follow_redirects=False)
    assert created.headers["location"] == "/dashboard/experiments?name=ab-prg"
    assert "Experiment ab-prg started" in (
        _notice(client.get(created.headers["location"]).text) or ""
    )
    again = client.post("/dashboard/experiments", data=form)  # the same form sent again
    assert again.status_code == 409
    stopped = client.post(
        "/dashboard/experiments/ab-prg/stop", data={"csrf_token": token}, follow_redirects=False
    )
    assert stopped.headers["location"] == "/dashboard/experiments?name=ab-prg"


# --------------------------------------------------------------------------- database outage


def _database_down(monkeypatch: pytest.MonkeyPatch) -> None:
    def unavailable(*_args: object) -> bool:
        raise OperationalError("SELECT", {}, Exception("database is down"))

    monkeypatch.setattr(auth, "dashboard_session_revoked", unavailable)
    monkeypatch.setattr(auth, "revoke_dashboard_session", unavailable)


def test_polls_say_the_database_is_down_and_show_no_data(
    dash: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    _login(dash)
    assert 'data-testid="poll-problem"' in dash.get("/dashboard/overview").text  # the banner
    _database_down(monkeypatch)
    hx = {"HX-Request": "true"}
    panel = dash.get("/dashboard/overview/panel", headers=hx)
    assert panel.status_code == 503 and panel.headers["X-Dashboard-Outage"] == "database"
    assert re.search(r'data-testid="database-health">down<', panel.text)
    assert "Endpoints" not in panel.text and "Cache" not in panel.text  # no data
    jobs = dash.get("/dashboard/jobs/list", headers=hx)
    assert jobs.status_code == 503 and jobs.headers["X-Dashboard-Outage"] == "database"
    assert "database-health" not in jobs.text and "Database unavailable" in jobs.text
    page = dash.get("/dashboard/models")
    assert page.status_code == 503 and "Database unavailable" in page.text
    assert "X-Dashboard-Outage" not in page.headers  # a page, not a panel


def test_the_login_form_renders_while_the_database_is_down(
    dash: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    _login(dash)
    _database_down(monkeypatch)
    form = dash.get("/dashboard/login")
    assert form.status_code == 200 and 'name="token"' in form.text
    assert 'data-testid="database-down"' in form.text


def test_logout_while_the_database_is_down_says_the_session_is_still_valid(
    dash: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    _login(dash)
    token = _csrf(dash.get("/dashboard/models").text)
    cookie = dash.cookies.get("genrec_dashboard")
    _database_down(monkeypatch)
    assert dash.post("/dashboard/logout").status_code == 403  # the CSRF token still counts
    kept = dash.post("/dashboard/logout", data={"csrf_token": token}, follow_redirects=False)
    assert kept.status_code == 503 and "Not logged out" in kept.text
    assert "this session is still valid" in kept.text
    assert "set-cookie" not in kept.headers and dash.cookies.get("genrec_dashboard") == cookie
    assert _csrf(kept.text) == token  # "Try logging out again" and "Delete ... anyway"
    forgotten = dash.post(
        "/dashboard/logout", data={"csrf_token": token, "forget": "1"}, follow_redirects=False
    )
    assert forgotten.status_code == 200 and "logout not recorded" in forgotten.text
    assert "would still be accepted until it expires" in forgotten.text
    assert dash.cookies.get("genrec_dashboard") is None
    monkeypatch.undo()
    dash.cookies.set("genrec_dashboard", cookie, path="/dashboard")
    out = dash.post("/dashboard/logout", data={"csrf_token": token}, follow_redirects=False)
    assert (out.status_code, out.headers["location"]) == (303, "/dashboard/login")
    again = dash.post("/dashboard/logout", data={"csrf_token": token}, follow_redirects=False)
    assert again.status_code == 303  # logged out already: nothing to do, no error
    dash.cookies.set("genrec_dashboard", cookie, path="/dashboard")
    assert dash.get("/dashboard/overview", follow_redirects=False).status_code == 303


def test_a_server_error_carries_the_dashboards_headers(
    dash: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 500 is answered outside the middleware that adds them (Starlette's outermost
    ServerErrorMiddleware): it went out frameable and cacheable, as the API's JSON."""
    _login(dash)
    holder = dash.app.state.services.holder  # type: ignore[attr-defined]

    def broken() -> object:
        raise RuntimeError("panel bug")

    monkeypatch.setattr(holder, "status", broken)
    for path, fragment in (
        ("/dashboard/models/served", True),
        ("/dashboard/overview/panel", True),
        ("/dashboard/models/served", False),
    ):
        headers = {"HX-Request": "true"} if fragment else {}
        answer = dash.get(path, headers=headers)
        assert answer.status_code == 500, (path, answer.text[:300])
        assert answer.headers["x-frame-options"] == "DENY", path
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"], path
        assert answer.headers["cache-control"] == "no-store", path
        assert answer.headers["x-content-type-options"] == "nosniff", path
        assert answer.headers["referrer-policy"] == "same-origin", path
        request_id = answer.headers["x-request-id"]
        assert "text/html" in answer.headers["content-type"], path
        assert request_id in answer.text and "panel bug" not in answer.text, path
        assert ("<html" in answer.text) is not fragment, path
    api = dash.get("/healthz")  # the API's own answers are untouched
    assert "x-frame-options" not in api.headers


@pytest.mark.parametrize("root_path", ["/genrec", "/dash"])
def test_headers_and_error_pages_follow_the_path_the_router_routes(
    dash: TestClient, root_path: str
) -> None:
    """Under ``uvicorn --root-path /genrec`` the scope's path holds the root path
    (``/genrec/dashboard/login`` for a request of ``/dashboard/login``) and the router
    strips it: the pages were served, but the headers middleware and the error pages
    looked at the unstripped path and took them for the API's, so a working dashboard
    went out frameable (clickjacking of its buttons), without CSP and cacheable."""
    client = TestClient(dash.app, root_path=root_path, raise_server_exceptions=False)
    login = client.get(f"{root_path}/dashboard/login")
    assert login.status_code == 200 and 'name="nonce"' in login.text  # routed as a page
    redirect = client.get(f"{root_path}/dashboard/overview", follow_redirects=False)
    missing = client.get(f"{root_path}/dashboard/no-such-page")
    assert redirect.status_code == 303 and missing.status_code == 404
    for answer in (login, redirect, missing):
        assert answer.headers.get("x-frame-options") == "DENY", answer.url
        assert "frame-ancestors 'none'" in answer.headers.get("content-security-policy", "")
        assert answer.headers.get("cache-control") == "no-store", answer.url
    assert "text/html" in missing.headers["content-type"]
    assert "There is no dashboard page at /dashboard/no-such-page" in missing.text
    static = client.get(f"{root_path}/dashboard/static/vendor/htmx.min.js")
    assert static.status_code == 200 and "cache-control" not in static.headers
    api = client.get(f"{root_path}/healthz")
    assert api.status_code == 200 and "x-frame-options" not in api.headers


def test_an_expired_session_returns_to_its_page_under_a_root_path(dash: TestClient) -> None:
    """Under ``uvicorn --root-path /genrec`` the scope's (raw) path of a page holds the
    root path, which ``safe_next`` refused as outside the dashboard: an expired session's
    login went to the overview instead of back to the page. The return target is now the
    path the router routes, as sent (still encoded), and a Referer or htmx's
    HX-Current-URL of a page under the root path is read the same way. The login form
    it is sent to is the browser's address, under the root path; ``next`` is an app path."""
    root_path = "/genrec"
    client = TestClient(dash.app, root_path=root_path, raise_server_exceptions=False)
    page = client.get(f"{root_path}/dashboard/catalog/items/a%2Fb?x=1", follow_redirects=False)
    assert (page.status_code, page.headers["location"]) == (
        303,
        "/genrec/dashboard/login?next=/dashboard/catalog/items/a%252Fb%3Fx%3D1",
    )
    base = f"http://testserver{root_path}"
    poll = client.get(
        f"{root_path}/dashboard/jobs/list",
        headers={"HX-Request": "true", "HX-Current-URL": f"{base}/dashboard/jobs"},
    )
    assert (poll.status_code, poll.headers["HX-Redirect"]) == (
        401,
        "/genrec/dashboard/login?next=/dashboard/jobs",
    )
    post = client.post(
        f"{root_path}/dashboard/models/ease/rollback",
        headers={"Referer": f"{base}/dashboard/models"},
        follow_redirects=False,
    )
    assert post.headers["location"] == "/genrec/dashboard/login?next=/dashboard/models"
    # The open-redirect checks still apply to what is left once the root path is gone.
    for referer in (f"{base}/docs", f"{base}//evil.example/dashboard/x", f"{base}x/dashboard/y"):
        outside = client.post(
            f"{root_path}/dashboard/models/ease/rollback",
            headers={"Referer": referer},
            follow_redirects=False,
        )
        assert outside.headers["location"] == "/genrec/dashboard/login", referer
