"""The dashboard in Chromium when things go wrong: framing, Back after logout, double clicks,
reloads, two login tabs, session expiry, outages of the database and of the server.

Same stack as ``test_dashboard_browser.py`` (``genrec serve`` over Postgres and Redis);
the outage tests put a killable TCP proxy between the server and Postgres, or stop the
server and start it again on the same port.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext, ConsoleMessage, Page, Route, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from sqlalchemy import make_url

from models_store import ModelStore
from tests.e2e.conftest import ADMIN_TOKEN, Stack
from tests.e2e.dashboard.test_dashboard_browser import _at_login, _login
from tests.e2e.dashboard.test_expiry_drafts_browser import _until_the_session_expires

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


def _login_here(page: Page) -> None:
    """Log in with the form the page shows (keeping its ``next``)."""
    page.get_by_label("Admin token").fill(ADMIN_TOKEN)
    page.get_by_label("Admin token").press("Enter")


@contextmanager
def page_server(html: str) -> Iterator[str]:
    """Another origin of the same site (127.0.0.1, another port) serving ``html``.

    A real server: a page Playwright fulfils itself (``route``) does not get framed
    content loaded at all, so it would prove nothing."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def served(module_stack: Stack) -> Stack:
    """One server for the tests that change nothing another test reads (they load pages,
    log in and out on pages of their own); the others start their own."""
    module_stack.serve()
    return module_stack


@contextmanager
def console_problems(page: Page) -> Iterator[list[str]]:
    """Console errors and page errors while the block runs (a CSP refusal is one)."""
    seen: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            seen.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: seen.append(str(error)))
    try:
        yield seen
    finally:
        page.remove_listener("console", on_console)


def test_pages_load_under_the_csp_and_cannot_be_framed(
    served: Stack, page: Page, context: BrowserContext
) -> None:
    base = served.base_url
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    with console_problems(page) as problems:
        _login(page, base)
        expect(page).to_have_url(f"{base}/dashboard/overview")
        expect(page.get_by_test_id("database-health")).to_have_text("up")
        expect(page.locator('[data-chart="rate-chart"] canvas')).to_be_visible(timeout=15_000)
        page.goto(f"{base}/dashboard/models/mult-vae/versions/1")
        expect(page.locator("[data-chart] canvas").first).to_be_visible()  # uPlot under the CSP
        page.goto(f"{base}/dashboard/models")
        expect(page.locator('.served-version[data-model="ease"]')).to_have_text("v1")
        page.goto(f"{base}/dashboard/jobs")
        page.goto(f"{base}/dashboard/explore?user=1")
        expect(page.get_by_test_id("list-ease").locator("li")).to_have_count(10)
    assert problems == []  # no CSP refusal, no script error, no /favicon.ico 404
    assert not [url for url in requested if url.endswith("/favicon.ico")]

    # Another page of the same site (another port of the same host: SameSite=Strict lets
    # the session cookie through) frames the models page: the browser refuses to show it.
    framing = context.new_page()
    with page_server(f'<iframe src="{base}/dashboard/models" width="1200" height="800">') as evil:
        framing.goto(evil)  # waits for the frame's load too
        framing.wait_for_timeout(1_000)
    child = framing.frames[1]
    assert child.url.startswith("chrome-error:"), child.url  # refused, not the models page
    expect(framing.frame_locator("iframe").get_by_role("button")).to_have_count(0)
    assert served.client().get("/admin/models").json()["models"][0]["aliases"] == {
        "production": "1"
    }


def test_back_after_logout_shows_no_data(served: Stack, page: Page) -> None:
    base = served.base_url
    for target, shown in [
        ("/dashboard/explore?user=1", page.get_by_test_id("history")),
        ("/dashboard/models/ease/versions/1", page.get_by_role("heading", name="ease v1")),
    ]:
        _login(page, base)
        expect(page).to_have_url(re.compile(r"/dashboard/overview$"))
        page.goto(base + target)
        expect(shown).to_be_visible()
        page.get_by_role("button", name="Log out").click()
        expect(page).to_have_url(re.compile(r"/dashboard/login"))
        page.go_back()
        expect(page).to_have_url(re.compile(r"/dashboard/login"))
        expect(page.get_by_label("Admin token")).to_be_visible()
        expect(shown).to_have_count(0)


def test_two_login_tabs_both_log_in(served: Stack, context: BrowserContext) -> None:
    """The second tab's form used to replace the first one's nonce: "The form expired"; then
    its login replaced the session the first tab's page was rendered for, so the first
    tab's forms were refused for their CSRF token."""
    base = served.base_url
    first, second = context.new_page(), context.new_page()
    first.goto(f"{base}/dashboard/login")
    second.goto(f"{base}/dashboard/login")
    first.get_by_label("Admin token").fill(ADMIN_TOKEN)
    first.get_by_label("Admin token").press("Enter")
    expect(first).to_have_url(f"{base}/dashboard/overview")
    second.get_by_label("Admin token").fill(ADMIN_TOKEN)
    second.get_by_label("Admin token").press("Enter")
    expect(second).to_have_url(f"{base}/dashboard/overview")
    # The first tab's page, rendered before the second login: its forms still work.
    first.get_by_role("button", name="Log out").click()
    expect(first).to_have_url(_at_login(base))
    expect(first.get_by_label("Admin token")).to_be_visible()


def test_two_login_forms_loaded_at_the_same_moment_both_log_in(
    served: Stack, context: BrowserContext
) -> None:
    """Two tabs loading the login form at once (a restored window, a session that ended
    under two tabs), before the browser had a login cookie: each answer set its own
    browser id, the last one stayed, and the other tab's form said "The form expired"."""
    base = served.base_url
    held: list[Route] = []
    context.route("**/dashboard/login", lambda route: held.append(route))
    first, second = context.new_page(), context.new_page()
    for tab in (first, second):
        tab.evaluate(f"setTimeout(() => {{ location.href = '{base}/dashboard/login'; }}, 0)")
    deadline = time.monotonic() + 20
    while len(held) < 2 and time.monotonic() < deadline:
        first.wait_for_timeout(100)
    assert len(held) == 2  # both requests left without a login cookie
    for route in held:
        route.continue_()
    context.unroute("**/dashboard/login")  # the login posts go straight through
    for tab in (first, second):
        expect(tab.get_by_label("Admin token")).to_be_visible()
        tab.get_by_label("Admin token").fill(ADMIN_TOKEN)
    first.get_by_label("Admin token").press("Enter")
    expect(first).to_have_url(f"{base}/dashboard/overview")
    second.get_by_label("Admin token").press("Enter")
    expect(second).to_have_url(f"{base}/dashboard/overview")


def test_after_expiry_the_login_comes_back_to_the_page(stack: Stack, page: Page) -> None:
    """Sessions of 7 s: a polled page, and a form sent after expiry, each land on the login
    form and return to where the operator was (with the form's query) after logging in."""
    stack.env["GENREC_DASHBOARD_SESSION_HOURS"] = "0.002"
    stack.serve()
    base = stack.base_url
    _login(page, base)
    page.goto(f"{base}/dashboard/jobs")  # polls every 2 s
    expect(page).to_have_url(_at_login(base), timeout=30_000)
    assert page.url.endswith("?next=/dashboard/jobs"), page.url
    _login_here(page)
    expect(page).to_have_url(f"{base}/dashboard/jobs")

    page.goto(f"{base}/dashboard/explore")  # does not poll
    _until_the_session_expires(page)
    page.get_by_label("User id").fill("2")
    page.get_by_role("button", name="Show").click()
    expect(page).to_have_url(_at_login(base))
    _login_here(page)
    expect(page).to_have_url(f"{base}/dashboard/explore?user=2&item=")
    expect(page.get_by_test_id("history")).to_be_visible()


def _second_ease_version(stack: Stack, base_csv: Path) -> str:
    """One more ``ease`` version in the server's store (closed form: a second), promoted,
    so that production has a version to roll back to."""
    from training.data.files import read_interaction_file
    from training.pipeline import train_and_save

    manifest = train_and_save(
        ModelStore(stack.store_dir),
        "ease",
        read_interaction_file(base_csv),
        source=str(base_csv),
        promote=False,
    )
    moved = stack.client().post("/admin/models/ease/promote", json={"version": manifest.version})
    assert moved.status_code == 200, moved.text
    return manifest.version


def test_double_clicks_and_reloads_repeat_no_action(
    stack: Stack, page: Page, base_csv: Path
) -> None:
    stack.serve()
    base = stack.base_url
    admin = stack.client()

    def jobs() -> set[int]:
        return {job["id"] for job in admin.get("/admin/jobs").json()["jobs"]}

    def cancel_all() -> None:
        """No worker runs here: the job stays queued, and an identical retrain would be
        refused as a duplicate (409 ``duplicate_job``) rather than queued again."""
        for job in jobs():
            admin.post(f"/admin/jobs/{job}/cancel")

    _login(page, base)
    page.goto(f"{base}/dashboard/jobs")
    page.get_by_label("Model", exact=True).select_option("ease")
    page.get_by_label("Promote").select_option("never")
    before = jobs()
    page.get_by_role("button", name="Start retrain").dblclick()
    expect(page.get_by_role("status")).to_contain_text("queued")
    expect(page).to_have_url(f"{base}/dashboard/jobs")  # redirected: a GET page
    page.wait_for_timeout(1_000)
    assert len(jobs() - before) == 1
    page.reload()
    expect(page.get_by_role("status")).to_have_count(0)  # the notice was shown once
    page.wait_for_timeout(500)
    assert len(jobs() - before) == 1
    cancel_all()

    # Two clicks 200 ms apart (the hunt: two jobs): the second lands on the page the first
    # one led to, which takes no action for a moment.
    page.get_by_label("Model", exact=True).select_option("ease")
    page.get_by_label("Promote").select_option("never")
    button = page.get_by_role("button", name="Start retrain")
    button.click(no_wait_after=True)
    page.wait_for_timeout(200)
    with suppress(PlaywrightTimeout):
        button.click(no_wait_after=True, timeout=700)  # disabled: times out
    expect(page.get_by_role("status")).to_contain_text("queued")
    page.wait_for_timeout(1_000)
    assert len(jobs() - before) == 2
    expect(button).to_be_enabled()  # after the pause
    cancel_all()

    # While an answer is on its way the form's button is disabled (the request is held
    # here until that was checked).
    held: list[Route] = []

    def hold_posts(route: Route) -> None:
        if route.request.method == "POST":
            held.append(route)
        else:
            route.continue_()

    page.route(f"{base}/dashboard/jobs", hold_posts)
    # (the page tells through the console: a locator or evaluate would wait for the held
    # navigation to finish)
    page.evaluate(
        """() => { const button = document.querySelector('form[action="/dashboard/jobs"] button');
                   new MutationObserver(() => { if (button.disabled) console.log('disabled'); })
                     .observe(button, {attributes: true}); }"""
    )
    with page.expect_console_message(lambda message: message.text == "disabled"):
        button.click(no_wait_after=True)
    page.wait_for_timeout(500)
    assert len(held) == 1
    held[0].continue_()
    expect(page.get_by_role("status")).to_contain_text("queued")
    page.unroute(f"{base}/dashboard/jobs")
    page.wait_for_timeout(500)
    assert len(jobs() - before) == 3
    cancel_all()

    # Rollback asks first; a double click moves production one step; reload moves nothing.
    second = _second_ease_version(stack, base_csv)

    def production() -> str:
        models = admin.get("/admin/models").json()["models"]
        return next(m for m in models if m["name"] == "ease")["aliases"]["production"]

    page.goto(f"{base}/dashboard/models")
    asked: list[str] = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    page.get_by_role("button", name="Roll back ease").click()
    page.wait_for_timeout(500)
    assert asked == [f"Roll back ease: production goes from v{second} back to v1. Continue?"]
    assert production() == second  # dismissed: nothing sent
    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Roll back ease").dblclick()
    expect(page.get_by_role("status")).to_have_text(
        f"ease: production rolled back to v1 (was v{second})."
    )
    assert production() == "1"
    page.reload()
    page.wait_for_timeout(500)
    assert production() == "1"
    expect(page.get_by_role("button", name="Roll back ease")).to_be_disabled()  # no history


class TcpProxy:
    """A TCP proxy in front of Postgres that a test can take away (listener and every
    connection closed: the server sees the database gone) and bring back on the same port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        if self._listener is not None:
            with suppress(OSError):  # wakes the blocked accept(), which close() alone does not
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            for sock in self._open:
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # stopped
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with suppress(OSError):
                sink.shutdown(socket.SHUT_WR)


@pytest.fixture
def postgres_proxy(postgres_url: str) -> Iterator[tuple[TcpProxy, str]]:
    """The proxy, and the database URL through it."""
    url = make_url(postgres_url)
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
    proxy.start()
    try:
        yield (
            proxy,
            url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False),
        )
    finally:
        proxy.stop()


def test_a_database_outage_shows_on_the_polled_panels_and_passes(
    stack: Stack, context: BrowserContext, postgres_proxy: tuple[TcpProxy, str]
) -> None:
    proxy, url = postgres_proxy
    stack.env["GENREC_DATABASE_URL"] = url
    stack.serve()
    base = stack.base_url
    page = context.new_page()
    _login(page, base)
    expect(page.get_by_test_id("database-health")).to_have_text("up")
    banner = page.get_by_test_id("poll-problem")
    expect(banner).to_be_hidden()

    proxy.stop()
    expect(page.get_by_test_id("database-health")).to_have_text("down")  # was stuck on "up"
    expect(banner).to_be_visible()
    expect(banner).to_contain_text(re.compile(r"Database unavailable since \d\d:\d\d:\d\d"))
    expect(page.get_by_test_id("endpoints")).to_have_count(0)  # no data without a session

    # Another tab: the login form renders (it answered 503), and logging out says it could
    # not be recorded; the cookie can still be deleted, which the page says ends nothing.
    other = context.new_page()
    other.goto(f"{base}/dashboard/login")
    expect(other.get_by_test_id("database-down")).to_be_visible()
    expect(other.get_by_label("Admin token")).to_be_visible()
    other.goto(f"{base}/dashboard/models")
    expect(other.get_by_role("heading", name="Database unavailable")).to_be_visible()

    proxy.start()
    expect(page.get_by_test_id("database-health")).to_have_text("up")
    expect(banner).to_be_hidden()
    expect(page.get_by_test_id("endpoints")).to_be_visible()

    page.goto(f"{base}/dashboard/jobs")
    proxy.stop()
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Not logged out")).to_be_visible()
    expect(page.get_by_test_id("logout-problem")).to_contain_text("this session is still valid")
    page.get_by_role("button", name="Delete this browser's cookie anyway").click()
    expect(page.get_by_test_id("logout-problem")).to_contain_text("logout could not be recorded")
    assert "genrec_dashboard" not in {cookie["name"] for cookie in context.cookies()}
    proxy.start()


def _serve_again(stack: Stack, port: int) -> None:
    """``genrec serve`` once more on ``port`` (a restart, as a deployment does)."""
    proc = stack.start(
        f"server-{len(stack.procs)}", "serve", "--host", "127.0.0.1", "--port", str(port)
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.alive(), proc.output()[-4000:]
        with suppress(httpx.HTTPError):
            if httpx.get(f"{stack.base_url}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise AssertionError(f"server not back in time:\n{proc.output()[-4000:]}")


def test_a_server_outage_marks_the_panels_stale_until_it_is_back(
    stack: Stack, context: BrowserContext
) -> None:
    server = stack.serve()
    base = stack.base_url
    port = int(base.rsplit(":", 1)[1])
    overview, jobs = context.new_page(), context.new_page()
    _login(overview, base)
    expect(overview.get_by_test_id("database-health")).to_have_text("up")
    jobs.goto(f"{base}/dashboard/jobs")
    expect(jobs.get_by_test_id("jobs")).to_be_visible()

    server.stop()
    for page, panel in ((overview, "#overview-panel"), (jobs, "#jobs-list")):
        banner = page.get_by_test_id("poll-problem")
        expect(banner).to_contain_text(
            re.compile(r"Server unreachable since \d\d:\d\d:\d\d; showing data from \d\d:\d\d:\d\d")
        )
        expect(page.locator(panel)).to_have_class(re.compile(r"\bstale\b"))
        expect(page.locator(panel)).to_have_attribute(
            "data-stale-label", re.compile(r"^Stale: data from \d\d:\d\d:\d\d$")
        )

    _serve_again(stack, port)
    for page, panel in ((overview, "#overview-panel"), (jobs, "#jobs-list")):
        expect(page.get_by_test_id("poll-problem")).to_be_hidden(timeout=30_000)
        expect(page.locator(panel)).not_to_have_class(re.compile(r"\bstale\b"))
    expect(overview.get_by_test_id("database-health")).to_have_text("up")
