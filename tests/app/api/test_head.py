"""HEAD on every GET resource answers as GET would, without the body (RFC 9110 9.3.2).

Uptime monitors and load balancers probe with HEAD; FastAPI's routes do not add it
to GET as Starlette's do, so every API route and dashboard page but the health checks
answered 405. ``app.core.head`` routes a HEAD as a GET, so the key check, the admin
token and its lockout and the dashboard's session apply exactly as to a GET.
"""

from __future__ import annotations

import asyncio
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi.testclient import TestClient
from httpx import Response
from starlette.types import Message, Receive, Scope, Send

from app.core.head import HeadAsGet
from app.main import create_app
from tests.app.conftest import ClientFactory, embedded_settings
from tests.app.dashboard.login import log_in

TOKEN = "admin-token-head-5c2e8a"
KEY = "api-key-head-3f9d1b7e6a"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
#: A value for each path parameter of the documented GET routes.
SAMPLES = {"user_id": "u1", "item_id": "3", "name": "mult-vae", "job_id": "1", "version": "1"}
#: Headers that differ between any two answers.
PER_ANSWER = {"x-request-id", "date"}


def _same_as_get(client: TestClient, path: str, headers: dict[str, str]) -> Response:
    got = client.get(path, headers=headers, follow_redirects=False)
    head = client.head(path, headers=headers, follow_redirects=False)
    assert head.status_code == got.status_code, (path, head.status_code, got.status_code)
    assert head.content == b"", path
    without = {k: v for k, v in got.headers.items() if k not in PER_ANSWER}
    assert {k: v for k, v in head.headers.items() if k not in PER_ANSWER} == without, path
    if "content-length" in got.headers:
        assert int(head.headers["content-length"]) == len(got.content), path
    return head


def test_every_get_route_answers_head_like_get(make_client: ClientFactory) -> None:
    client = make_client(admin_token=TOKEN)
    paths = client.get("/openapi.json").json()["paths"]
    templates = [template for template, ops in paths.items() if "get" in ops]
    assert len(templates) >= 10
    statuses = set()
    for template in templates:
        path = re.sub(r"\{(\w+)[^}]*\}", lambda m: SAMPLES[m.group(1)], template)
        statuses.add(_same_as_get(client, path, AUTH).status_code)
    for path in ("/docs", "/openapi.json", "/no-such-path"):
        statuses.add(_same_as_get(client, path, {}).status_code)
    # /metrics grows with every request, so only its status and type can match.
    metrics = client.head("/metrics")
    assert (metrics.status_code, metrics.content) == (200, b"")
    assert metrics.headers["content-type"].startswith("text/plain")
    assert {200, 404} <= statuses  # found and not found alike


def test_head_meets_the_api_key_check_as_get_does(make_client: ClientFactory) -> None:
    client = make_client(api_keys=KEY)
    path = "/v1/users/u1/recommendations"
    refused = _same_as_get(client, path, {})
    assert refused.status_code == 401
    assert _same_as_get(client, path, {"Authorization": f"Bearer {KEY}"}).status_code == 200


def test_wrong_admin_tokens_by_head_count_toward_the_lockout(make_client: ClientFactory) -> None:
    client = make_client(admin_token=TOKEN, admin_max_failures=2)
    wrong = {"Authorization": "Bearer wrong-token"}
    assert [client.head("/admin/models", headers=wrong).status_code for _ in range(2)] == [401] * 2
    assert client.head("/admin/models", headers=AUTH).status_code == 429
    assert client.get("/admin/models", headers=AUTH).status_code == 429


def test_dashboard_pages_answer_head_behind_the_session(make_client: ClientFactory) -> None:
    client = make_client(admin_token=TOKEN)
    logged_out = _same_as_get(client, "/dashboard/overview", {})
    assert logged_out.status_code == 303
    assert logged_out.headers["location"].startswith("/dashboard/login")
    assert _same_as_get(client, "/dashboard/static/dashboard.css", {}).status_code == 200
    log_in(client, TOKEN)
    for path in ("/dashboard/overview", "/dashboard/models", "/dashboard/jobs"):
        page = _same_as_get(client, path, {})
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")


def test_head_on_a_route_without_get_is_405_listing_what_it_serves(client: TestClient) -> None:
    answer = client.head("/v1/interactions")
    assert answer.status_code == 405 and answer.content == b""
    assert answer.headers["allow"] == "POST"
    get_and_head = client.post("/healthz")
    assert get_and_head.status_code == 405
    assert get_and_head.headers["allow"] == "GET, HEAD"


def test_head_is_logged_and_counted_as_head(client: TestClient) -> None:
    client.head("/v1/users/u1/recommendations")
    text = client.get("/metrics").text
    assert re.search(
        r'^genrec_request_seconds_count\{method="HEAD",'
        r'route="/v1/users/\{user_id\}/recommendations",status="200"\} 1\.0$',
        text,
        re.M,
    ), [line for line in text.splitlines() if "HEAD" in line]


async def _answer_of(app: HeadAsGet, method: str) -> tuple[Scope, list[Message]]:
    scope: Scope = {"type": "http", "method": method, "path": "/"}
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return scope, sent


def test_the_body_is_dropped_and_the_server_still_sees_head() -> None:
    """A streamed body's chunks are dropped and its end sent empty; the scope the server
    holds keeps HEAD (it reads the method to know no body follows)."""
    seen: list[str] = []

    async def streams(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["method"])
        scope["route"] = "the route"
        headers = [(b"content-length", b"6")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"abc", "more_body": True})
        await send({"type": "http.response.body", "body": b"def", "more_body": False})

    app = HeadAsGet(streams)
    scope, sent = asyncio.run(_answer_of(app, "HEAD"))
    assert seen == ["GET"] and scope["method"] == "HEAD" and scope["route"] == "the route"
    assert sent[0]["headers"] == [(b"content-length", b"6")]
    assert sent[1:] == [{"type": "http.response.body", "body": b"", "more_body": False}]
    _, sent = asyncio.run(_answer_of(app, "GET"))
    assert b"".join(m.get("body", b"") for m in sent) == b"abcdef"


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_the_health_checks_keep_answering_head(client: TestClient, path: str) -> None:
    assert _same_as_get(client, path, {}).status_code == 200


@pytest.fixture(params=["httptools", "h11"])
def served(
    request: pytest.FixtureRequest, trained_store_dir: Path, tmp_path: Path
) -> Iterator[tuple[str, int]]:
    """The app under a real uvicorn (each HTTP parser) on a socket bound before it starts."""
    settings = embedded_settings(
        store_dir=trained_store_dir, database_url=f"sqlite:///{tmp_path}/log.db"
    )
    config = uvicorn.Config(create_app(settings), http=request.param, log_level="warning")
    server = uvicorn.Server(config)
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen()
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]})
    thread.start()
    try:
        yield listening.getsockname()
    finally:
        server.should_exit = True
        thread.join()
        listening.close()


def _read_head(conn: socket.socket, pending: bytes) -> tuple[bytes, bytes]:
    """The status line and headers of the next answer, and what came after them."""
    while b"\r\n\r\n" not in pending:
        chunk = conn.recv(65536)
        assert chunk, f"connection closed: {pending!r}"
        pending += chunk
    head, _, rest = pending.partition(b"\r\n\r\n")
    return head, rest


def test_a_real_server_sends_head_without_a_body_and_keeps_the_connection(
    served: tuple[str, int],
) -> None:
    """Under uvicorn, which reads the method to know whether a body follows: GET's
    Content-Length, no body bytes, and the same connection serves the next request."""
    with socket.create_connection(served, timeout=60) as conn:
        conn.sendall(
            b"HEAD /v1/users/u1/recommendations HTTP/1.1\r\nHost: t\r\n\r\n"
            b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
        )
        head, rest = _read_head(conn, b"")
        assert head.startswith(b"HTTP/1.1 200"), head
        length = re.search(rb"(?im)^content-length: (\d+)", head)
        assert length and int(length.group(1)) > 0, head
        following, _ = _read_head(conn, rest)
        assert following.startswith(b"HTTP/1.1 200"), (rest[:200], following[:200])
