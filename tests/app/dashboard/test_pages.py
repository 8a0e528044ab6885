"""The dashboard in process (TestClient over the embedded app): session, CSRF, every page.

The browser tests (tests/e2e/dashboard) drive the same pages in Chromium
against Postgres and Redis; these check the server side of each rule fast.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError

import app.dashboard.auth as auth
from app.dashboard.auth import _serializer
from tests.app.conftest import ClientFactory

TOKEN = "dash-test-token-5c1e"
PAGES = [
    "/dashboard/overview",
    "/dashboard/overview/panel",
    "/dashboard/models",
    "/dashboard/models/served",
    "/dashboard/models/ease/versions/1",
    "/dashboard/jobs",
    "/dashboard/jobs/list",
    "/dashboard/experiments",
    "/dashboard/experiments/none-yet/results",
    "/dashboard/explore?user=u1&item=3",
    "/dashboard/catalog?q=Item 3",
    "/dashboard/catalog/items/3",
]


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, html[:2000]
    return match.group(1)


def _login(client: TestClient, token: str = TOKEN) -> int:
    form = client.get("/dashboard/login")
    nonce = re.search(r'name="nonce" value="([^"]+)"', form.text)
    assert nonce
    answer = client.post(
        "/dashboard/login", data={"token": token, "nonce": nonce.group(1)}, follow_redirects=False
    )
    return answer.status_code


@pytest.fixture
def dash(make_client: ClientFactory) -> TestClient:
    return make_client(admin_token=TOKEN, default_model="ease")


def test_every_page_needs_the_session(dash: TestClient) -> None:
    for path in ["/dashboard", *PAGES]:
        answer = dash.get(path, follow_redirects=False)
        assert answer.status_code == 303, path
        assert answer.headers["location"].split("?next=")[0] == "/dashboard/login"
    htmx = dash.get("/dashboard/overview/panel", headers={"HX-Request": "true"})
    assert (htmx.status_code, htmx.headers["HX-Redirect"]) == (401, "/dashboard/login")
    post = dash.post("/dashboard/models/ease/rollback", follow_redirects=False)
    assert post.status_code == 303


def test_login_sets_a_strict_httponly_cookie_and_pages_render(dash: TestClient) -> None:
    assert _login(dash) == 303
    for path in PAGES:
        answer = dash.get(path)
        assert answer.status_code == 200, (path, answer.text[:2000])
    page = dash.get("/dashboard/overview").text
    for label in ["Overview", "Models", "Jobs", "Experiments", "Explore", "Catalog"]:
        assert f">{label}</a>" in page


def test_session_cookie_attributes(dash: TestClient) -> None:
    form = dash.get("/dashboard/login")
    nonce = re.search(r'name="nonce" value="([^"]+)"', form.text)
    assert nonce
    answer = dash.post(
        "/dashboard/login", data={"token": TOKEN, "nonce": nonce.group(1)}, follow_redirects=False
    )
    set_cookie = [v for k, v in answer.headers.multi_items() if k == "set-cookie"]
    session = next(v for v in set_cookie if v.startswith("genrec_dashboard="))
    lowered = session.lower()
    assert "httponly" in lowered and "samesite=strict" in lowered and "path=/dashboard" in lowered
    assert TOKEN not in session
    assert "secure" not in lowered  # plain http here; https requests get Secure


def test_wrong_token_and_missing_nonce_are_refused(dash: TestClient) -> None:
    assert _login(dash, "not-the-token") == 401
    assert dash.get("/dashboard/overview", follow_redirects=False).status_code == 303
    dash.get("/dashboard/login")
    no_nonce = dash.post("/dashboard/login", data={"token": TOKEN}, follow_redirects=False)
    assert no_nonce.status_code == 403


def test_state_changes_need_the_csrf_token(dash: TestClient) -> None:
    _login(dash)
    html = dash.get("/dashboard/models").text
    token = _csrf(html)
    refused = dash.post("/dashboard/models/ease/promote", data={"version": "1"})
    assert refused.status_code == 403 and "CSRF" in refused.text
    wrong = dash.post(
        "/dashboard/models/ease/promote", data={"version": "1", "csrf_token": token + "x"}
    )
    assert wrong.status_code == 403
    ok = dash.post("/dashboard/models/ease/promote", data={"version": "1", "csrf_token": token})
    assert ok.status_code == 200 and "production now points at v1" in ok.text
    by_header = dash.post(
        "/dashboard/models/ease/promote", data={"version": "1"}, headers={"X-CSRF-Token": token}
    )
    assert by_header.status_code == 200
    assert dash.post("/dashboard/logout").status_code == 403  # logout is a state change too
    out = dash.post("/dashboard/logout", data={"csrf_token": token}, follow_redirects=False)
    assert out.status_code == 303
    assert dash.get("/dashboard/overview", follow_redirects=False).status_code == 303


def test_promote_errors_are_shown_not_raised(dash: TestClient) -> None:
    _login(dash)
    token = _csrf(dash.get("/dashboard/models").text)
    missing = dash.post(
        "/dashboard/models/ease/promote", data={"version": "99", "csrf_token": token}
    )
    assert missing.status_code == 404 and "99" in missing.text
    nothing = dash.post("/dashboard/models/ease/rollback", data={"csrf_token": token})
    assert nothing.status_code == 409


def test_retrain_form_validates_like_the_admin_api(dash: TestClient) -> None:
    _login(dash)
    token = _csrf(dash.get("/dashboard/jobs").text)
    bad_json = dash.post(
        "/dashboard/jobs", data={"model": "ease", "params": "{", "csrf_token": token}
    )
    assert bad_json.status_code == 422 and "not JSON" in bad_json.text
    for unreadable in ('{"epochs": ' + "9" * 5_000 + "}", "[" * 100_000 + "]" * 100_000):
        refused = dash.post(
            "/dashboard/jobs", data={"model": "ease", "params": unreadable, "csrf_token": token}
        )
        assert refused.status_code == 422 and "not readable as JSON" in refused.text
    unknown = dash.post(
        "/dashboard/jobs", data={"model": "no-such", "params": "{}", "csrf_token": token}
    )
    assert unknown.status_code == 422
    queued = dash.post(
        "/dashboard/jobs",
        data={
            "model": "ease",
            "data": "log+base",
            "promote": "never",
            "params": "{}",
            "csrf_token": token,
        },
    )
    assert queued.status_code == 200 and "queued" in queued.text
    listed = dash.get("/dashboard/jobs/list").text
    assert 'data-status="queued"' in listed


def test_a_queued_job_can_be_cancelled_from_the_jobs_page(dash: TestClient) -> None:
    """The page's duplicate notice says to cancel the job first; the page had no way to."""
    _login(dash)
    token = _csrf(dash.get("/dashboard/jobs").text)
    form = {"model": "ease", "params": "{}", "csrf_token": token}
    assert dash.post("/dashboard/jobs", data=form).status_code == 200
    listed = dash.get("/dashboard/jobs/list").text
    job_id = re.search(r'data-job-id="(\d+)" data-status="queued"', listed)
    assert job_id and f'action="/dashboard/jobs/{job_id[1]}/cancel"' in listed
    forged = dash.post(f"/dashboard/jobs/{job_id[1]}/cancel", data={})
    assert forged.status_code == 403
    cancelled = dash.post(f"/dashboard/jobs/{job_id[1]}/cancel", data={"csrf_token": token})
    assert cancelled.status_code == 200 and f"Job {job_id[1]} (ease) cancelled." in cancelled.text
    listed = dash.get("/dashboard/jobs/list").text
    assert f'data-job-id="{job_id[1]}" data-status="cancelled"' in listed
    assert "/cancel" not in listed  # an ended job has no button
    again = dash.post(f"/dashboard/jobs/{job_id[1]}/cancel", data={"csrf_token": token})
    assert again.status_code == 409 and "already cancelled" in again.text
    assert dash.post("/dashboard/jobs/999/cancel", data={"csrf_token": token}).status_code == 404


def test_dashboard_is_off_without_an_admin_token(make_client: ClientFactory) -> None:
    off = make_client(admin_token=None)
    for path in ["/dashboard", "/dashboard/login", "/dashboard/overview"]:
        answer = off.get(path, follow_redirects=False)
        assert answer.status_code == 403 and "disabled" in answer.text


def test_docs_use_local_assets(dash: TestClient) -> None:
    page = dash.get("/docs").text
    assert "/docs/assets/swagger-ui-bundle.js" in page and "cdn" not in page.lower()
    asset = dash.get("/docs/assets/swagger-ui-bundle.js")
    assert asset.status_code == 200 and len(asset.content) > 100_000
    assert dash.get("/redoc").status_code == 404


def test_wrong_tokens_lock_the_address_out_of_login_and_the_admin_api(
    make_client: ClientFactory,
) -> None:
    """Shared count: three wrong tokens (login form or Bearer) -> 429 for both, even with
    the right token, with Retry-After."""
    client = make_client(admin_token=TOKEN, default_model="ease", admin_max_failures=3)
    assert _login(client, "wrong-1") == 401
    assert client.get("/admin/jobs", headers={"Authorization": "Bearer wrong-2"}).status_code == 401
    assert client.get("/admin/jobs").status_code == 401  # no token counts too
    locked = client.get("/admin/jobs", headers={"Authorization": f"Bearer {TOKEN}"})
    assert locked.status_code == 429 and locked.json()["error"] == "too_many_failures"
    assert 1 <= int(locked.headers["Retry-After"]) <= 60
    assert TOKEN not in locked.text
    assert _login(client) == 429  # the right token, but locked out
    form = client.get("/dashboard/login")
    nonce = re.search(r'name="nonce" value="([^"]+)"', form.text)
    assert nonce
    page = client.post("/dashboard/login", data={"token": TOKEN, "nonce": nonce.group(1)})
    assert "Too many wrong tokens" in page.text and "Retry-After" in page.headers


def test_a_right_token_clears_earlier_failures(make_client: ClientFactory) -> None:
    client = make_client(admin_token=TOKEN, default_model="ease", admin_max_failures=3)
    for _ in range(2):
        assert _login(client, "wrong") == 401
    assert (
        client.get("/admin/jobs", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    )
    for _ in range(2):
        assert _login(client, "wrong") == 401
    assert _login(client) == 303  # 2 + 2 failures, but the success in between reset them


def _session_cookie(client: TestClient) -> str:
    value = client.cookies.get("genrec_dashboard")
    assert value, "no session cookie"
    return value


def test_logout_revokes_the_cookie_on_every_replica(
    make_client: ClientFactory, tmp_path: Path
) -> None:
    """A copy of the cookie taken before logout is refused afterwards, by this replica and
    by another one on the same database; a new login works."""
    database = f"sqlite:///{tmp_path}/shared.db"
    one = make_client(admin_token=TOKEN, default_model="ease", database_url=database)
    other = make_client(admin_token=TOKEN, default_model="ease", database_url=database)
    _login(one)
    copied = _session_cookie(one)
    other.cookies.set("genrec_dashboard", copied, path="/dashboard")
    assert other.get("/dashboard/overview", follow_redirects=False).status_code == 200
    token = _csrf(one.get("/dashboard/models").text)
    out = one.post("/dashboard/logout", data={"csrf_token": token}, follow_redirects=False)
    assert out.status_code == 303
    for replica in (one, other):
        replica.cookies.clear()
        replica.cookies.set("genrec_dashboard", copied, path="/dashboard")
        answer = replica.get("/dashboard/overview", follow_redirects=False)
        assert (answer.status_code, answer.headers["location"]) == (303, "/dashboard/login")
    one.cookies.clear()
    assert _login(one) == 303 and _session_cookie(one) != copied
    assert one.get("/dashboard/overview", follow_redirects=False).status_code == 200


def test_a_cookie_without_a_session_id_asks_for_a_new_login(dash: TestClient) -> None:
    """Cookies signed before sessions had ids (the previous release) cannot be revoked."""
    old = _serializer(TOKEN, "session").dumps({"csrf": "c" * 43, "at": time.time()})
    dash.cookies.clear()
    dash.cookies.set("genrec_dashboard", old, path="/dashboard")
    assert dash.get("/dashboard/overview", follow_redirects=False).status_code == 303


def test_a_session_the_database_cannot_check_is_a_503_page(
    dash: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    _login(dash)

    def unavailable(*_args: object) -> bool:
        raise OperationalError("SELECT", {}, Exception("database is down"))

    monkeypatch.setattr(auth, "dashboard_session_revoked", unavailable)
    answer = dash.get("/dashboard/overview", follow_redirects=False)
    assert answer.status_code == 503 and "database is unavailable" in answer.text
    assert "Traceback" not in answer.text


def test_a_nul_in_a_dashboard_path_or_query_is_a_422_not_a_database_outage(
    dash: TestClient,
) -> None:
    """PostgreSQL text cannot hold NUL: let through, each of these read as "database
    unavailable (DataError)"; refused before any lookup like the API's parameters."""
    _login(dash)
    token = _csrf(dash.get("/dashboard/experiments").text)
    for url in (
        "/dashboard/catalog/items/a%00b",
        "/dashboard/catalog?q=%00",
        "/dashboard/experiments?name=%00",
        "/dashboard/experiments/%00/results",
        "/dashboard/explore?user=%00",
        "/dashboard/explore?item=%00",
        "/dashboard/models/ease/versions/%00",
    ):
        r = dash.get(url)
        assert r.status_code == 422 and "NUL" in r.text, (url, r.status_code, r.text[:300])
    for url in ("/dashboard/experiments/%00/stop", "/dashboard/models/%00/rollback"):
        r = dash.post(url, data={"csrf_token": token})
        assert r.status_code == 422 and "NUL" in r.text, (url, r.status_code, r.text[:300])


def test_the_models_page_names_a_version_it_cannot_read(dash: TestClient, store_dir: Path) -> None:
    (store_dir / "mult-dae" / "versions" / "1" / "manifest.json").write_text("{oops")
    _login(dash)
    page = dash.get("/dashboard/models")
    assert page.status_code == 200
    assert "whose manifest cannot be read" in page.text and "v1: " in page.text
    assert 'id="model-ease"' in page.text  # the other models are listed as before


def test_promote_repairs_an_alias_file_that_does_not_parse_and_says_so(
    dash: TestClient, store_dir: Path
) -> None:
    """Through the admin route, on the store's path for an operator's promotion: the page
    answered 409 "is unreadable" and only the command line could repair it."""
    alias_file = store_dir / "ease" / "aliases" / "production.json"
    alias_file.write_text("{oops")
    _login(dash)
    token = _csrf(dash.get("/dashboard/models").text)
    promoted = dash.post(
        "/dashboard/models/ease/promote",
        data={"version": "1", "csrf_token": token},
        follow_redirects=False,
    )
    assert promoted.status_code == 303, promoted.text
    page = dash.get(promoted.headers["location"]).text
    notice = re.search(r'<p class="notice" role="status">([^<]*)</p>', page)
    assert notice, page[:3000]
    said = notice.group(1)
    assert said.startswith("ease: production now points at v1. Its alias file was unreadable: ")
    assert "with no rollback history (kept as ease/aliases/production.json.unreadable-" in said
    assert str(store_dir) not in page
    assert len(list(alias_file.parent.glob("production.json.unreadable-*"))) == 1


def test_retrain_form_refuses_a_key_given_twice_like_the_admin_api(dash: TestClient) -> None:
    """``{"l2": 1, "l2": 2}`` queued a job with l2=2, the last value, unseen; the admin
    API refuses such a body (``app.api.body``), and so does the form."""
    _login(dash)
    token = _csrf(dash.get("/dashboard/jobs").text)
    refused = dash.post(
        "/dashboard/jobs",
        data={"model": "ease", "params": '{"l2": 1, "l2": 2}', "csrf_token": token},
    )
    assert refused.status_code == 422
    assert "params: key" in refused.text and "appears more than once" in refused.text
