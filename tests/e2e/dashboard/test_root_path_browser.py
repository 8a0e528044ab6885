"""The dashboard behind a reverse proxy that serves it under ``/genrec`` (Chromium).

The proxy (a few lines below, as nginx's ``location /genrec/ { proxy_pass
http://api/; }`` would) strips ``/genrec`` and passes the request to a real uvicorn
started with ``--root-path /genrec``; anything outside the prefix it answers 404 and
records. Before, every address the dashboard wrote was ``/dashboard/...``: the login
form posted outside the prefix, no stylesheet or script loaded, the session cookie
(``Path=/dashboard``) was never sent back. The browser logs in, follows the
navigation, sees an htmx poll fill in, submits a form, logs out; no request may have
left the prefix.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.e2e.conftest import ADMIN_TOKEN, Proc, Stack, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

PREFIX = "/genrec"
#: Not passed on, in either direction (RFC 9110 7.6.1), or recomputed by this server.
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "date",
    "server",
}


@contextmanager
def prefix_proxy(upstream: str) -> Iterator[tuple[str, list[str]]]:
    """``(proxy URL, paths asked outside the prefix)``: strips ``PREFIX`` and forwards."""
    strays: list[str] = []
    client = httpx.Client(base_url=upstream, timeout=60, follow_redirects=False)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _forward(self) -> None:
            if not (self.path == PREFIX or self.path.startswith(f"{PREFIX}/")):
                strays.append(f"{self.command} {self.path}")
                self._answer(404, [("content-type", "text/plain")], b"outside the prefix")
                return
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = [(k, v) for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP]
            answer = client.request(
                self.command, self.path[len(PREFIX) :] or "/", headers=headers, content=body
            )
            kept = [(k, v) for k, v in answer.headers.multi_items() if k not in HOP_BY_HOP]
            self._answer(answer.status_code, kept, answer.content)

        def _answer(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_POST = do_HEAD = _forward

        def log_message(self, format: str, *args: object) -> None:
            pass  # the server's own log says what was asked

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", strays
    finally:
        server.shutdown()
        server.server_close()
        client.close()


def _uvicorn_under_root(stack: Stack, timeout: float = 90.0) -> str:
    """uvicorn's own command line with ``--root-path``, as a deployment behind a proxy runs."""
    port = free_port()
    log_path = stack.logs / "uvicorn.log"
    command = [sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory"]
    listen = ["--host", "127.0.0.1", "--port", str(port), "--root-path", PREFIX]
    with log_path.open("wb") as handle:
        popen = subprocess.Popen(
            [*command, *listen],
            env=stack.env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            cwd=stack.logs,
        )
    proc = Proc("uvicorn", popen, log_path)
    stack.procs.append(proc)  # killed with the stack's
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise AssertionError(f"uvicorn exited early:\n{proc.output()[-4000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"uvicorn not ready in {timeout}s:\n{proc.output()[-4000:]}")


def test_the_dashboard_works_under_a_proxy_prefix(
    stack: Stack, page: Page, context: BrowserContext
) -> None:
    upstream = _uvicorn_under_root(stack)
    with prefix_proxy(upstream) as (proxy, strays):
        base = f"{proxy}{PREFIX}/dashboard"

        page.goto(f"{base}/models")  # not logged in: to the login form, coming back after
        expect(page).to_have_url(f"{base}/login?next=/dashboard/models")
        page.get_by_label("Admin token").fill(ADMIN_TOKEN)
        page.get_by_label("Admin token").press("Enter")
        expect(page).to_have_url(f"{base}/models")
        # The vendored scripts and the stylesheet came through the prefix.
        assert page.evaluate("typeof htmx") == "object"
        assert page.evaluate("getComputedStyle(document.body).margin") != "8px"  # not UA's
        session = {c["name"]: c for c in context.cookies()}["genrec_dashboard"]
        assert session["path"] == f"{PREFIX}/dashboard"

        nav = page.get_by_role("navigation", name="Dashboard")
        nav.get_by_role("link", name="Overview", exact=True).click()
        expect(page).to_have_url(f"{base}/overview")
        expect(page.locator("#overview-panel")).to_contain_text("ease")  # the htmx poll

        nav.get_by_role("link", name="Jobs", exact=True).click()
        expect(page).to_have_url(f"{base}/jobs")
        page.get_by_label("Model").select_option("ease")
        page.get_by_role("button", name="Start retrain").click()
        expect(page).to_have_url(f"{base}/jobs")  # Post/Redirect/Get, under the prefix
        expect(page.get_by_role("status")).to_contain_text("queued (ease)")
        expect(page.locator("#jobs-list")).to_contain_text("queued")

        page.get_by_role("button", name="Log out").click()
        expect(page).to_have_url(f"{base}/login")
        assert "genrec_dashboard" not in {c["name"] for c in context.cookies()}
        page.goto(f"{base}/jobs")
        expect(page).to_have_url(f"{base}/login?next=/dashboard/jobs")

        assert strays == []
