"""``GENREC_BODY_TIMEOUT_S``: a request body that stops arriving is a 408, and the
connection is closed; a body that arrives slowly but steadily is read as any other.

Against a real uvicorn server (both of its HTTP parsers) and raw sockets: the test client
hands the app the whole body at once, so it cannot stall. Before the timeout, a client that
declared 1,000 bytes and sent 10 held its connection and the request forever: uvicorn has
no body-read timeout of its own.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from app.core.body_timeout import BodyTimeoutMiddleware
from app.core.metrics import Metrics
from app.main import create_app
from tests.app.conftest import embedded_settings

#: Small, so that the stalled requests end quickly; the steady body's pauses are a fifth.
TIMEOUT_S = 1.0
#: Only a bound for a test that fails by hanging, never a figure asserted on.
SOCKET_WAIT_S = 60.0
Address = tuple[str, int]


@pytest.fixture(scope="module", params=["httptools", "h11"])
def served(
    request: pytest.FixtureRequest,
    trained_store_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Address]:
    """The app under ``uvicorn`` with each HTTP parser, on a socket bound before it starts:
    a client that connects first waits in the listen backlog, so nothing polls for start."""
    database = tmp_path_factory.mktemp("body-timeout") / "log.db"
    settings = embedded_settings(
        store_dir=trained_store_dir,
        database_url=f"sqlite:///{database}",
        body_timeout_s=TIMEOUT_S,
        access_log=False,
    )
    config = uvicorn.Config(create_app(settings), http=request.param, log_level="warning")
    server = uvicorn.Server(config)
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen()
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]})
    thread.start()
    try:
        host, port = listening.getsockname()
        yield host, port
    finally:
        server.should_exit = True
        thread.join()
        listening.close()


def _head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [
        f"{method} {path} HTTP/1.1",
        "Host: genrec",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _until_closed(conn: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    received = b""
    while chunk := conn.recv(65536):
        received += chunk
    return received


def _one_response(conn: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """The next response on a kept-alive connection (its body by Content-Length)."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = conn.recv(65536)
        assert chunk, f"the server closed the connection: {received!r}"
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in header_lines)}
    while len(body) < int(headers["content-length"]):
        chunk = conn.recv(65536)
        assert chunk, f"the server closed the connection mid-response: {body!r}"
        body += chunk
    return int(status_line.split()[1]), headers, body


def _timeouts_counted(address: Address) -> float:
    with socket.create_connection(address, timeout=SOCKET_WAIT_S) as conn:
        conn.sendall(_head("GET", "/metrics", {}))
        status, _, body = _one_response(conn)
    assert status == 200
    found = re.search(rb"^genrec_body_timeouts_total (\S+)$", body, re.MULTILINE)
    assert found, "genrec_body_timeouts_total is not exposed"
    return float(found.group(1))


#: A JSON interaction whose body stops after its first 10 bytes, declared by length or
#: sent chunked (one chunk, then nothing, not even the last chunk).
STALLS = {
    "content-length": ({"Content-Length": "1000"}, b'{"user_id"'),
    "chunked": ({"Transfer-Encoding": "chunked"}, b'a\r\n{"user_id"\r\n'),
}


@pytest.mark.parametrize("framing", sorted(STALLS))
def test_a_body_that_stops_arriving_is_a_408_and_the_connection_closes(
    served: Address, framing: str
) -> None:
    headers, first_bytes = STALLS[framing]
    before = _timeouts_counted(served)
    with socket.create_connection(served, timeout=SOCKET_WAIT_S) as conn:
        head = _head("POST", "/v1/interactions", {"Content-Type": "application/json", **headers})
        conn.sendall(head + first_bytes)
        answer = _until_closed(conn)  # returns only once the server has closed it
    head_bytes, _, body = answer.partition(b"\r\n\r\n")
    assert head_bytes.startswith(b"HTTP/1.1 408 "), answer
    assert re.search(rb"(?im)^connection: close\r?$", head_bytes), head_bytes
    payload = json.loads(body)
    assert payload["error"] == "body_timeout", payload
    assert "GENREC_BODY_TIMEOUT_S" in payload["message"] and payload["request_id"]
    assert _timeouts_counted(served) == before + 1


def test_a_dashboard_form_that_stops_arriving_gets_the_dashboards_408(served: Address) -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded", "Content-Length": "100"}
    with socket.create_connection(served, timeout=SOCKET_WAIT_S) as conn:
        conn.sendall(_head("POST", "/dashboard/login", form) + b"token=abc")
        answer = _until_closed(conn)
    head_bytes, _, page = answer.partition(b"\r\n\r\n")
    assert head_bytes.startswith(b"HTTP/1.1 408 "), answer[:300]
    assert re.search(rb"(?im)^connection: close\r?$", head_bytes), head_bytes
    assert b"<html" in page and b"GENREC_BODY_TIMEOUT_S" in page


def test_a_slow_but_steady_body_is_read_and_the_connection_kept(served: Address) -> None:
    """Six pieces a fifth of the timeout apart: the body takes longer than the timeout in
    all, but no pause between two reads is as long; the timeout is per read, not total."""
    rows = [{"user_id": "steady", "item_id": str(i), "rating": 4} for i in range(6)]
    body = json.dumps({"interactions": rows}).encode()
    pieces = [body[i : i + len(body) // 6 + 1] for i in range(0, len(body), len(body) // 6 + 1)]
    headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
    with socket.create_connection(served, timeout=SOCKET_WAIT_S) as conn:
        conn.sendall(_head("POST", "/v1/interactions", headers))
        for piece in pieces:
            time.sleep(TIMEOUT_S / 5)  # the slow client itself, not a wait for the server
            conn.sendall(piece)
        status, answer_headers, answer = _one_response(conn)
        assert (status, json.loads(answer)) == (201, {"accepted": 6}), answer
        assert answer_headers.get("connection", "").lower() != "close"
        conn.sendall(_head("GET", "/healthz", {}))  # the same connection serves the next
        assert _one_response(conn)[0] == 200


def test_zero_turns_the_timeout_off() -> None:
    """``GENREC_BODY_TIMEOUT_S=0``: the app gets the server's own ``receive``, untouched."""
    seen = []

    async def app(scope: object, receive: object, send: object) -> None:
        seen.append(receive)

    async def receive() -> dict[str, object]:
        raise AssertionError("not called")

    async def send(message: object) -> None:
        raise AssertionError("not called")

    middleware = BodyTimeoutMiddleware(app, timeout_s=0, metrics=Metrics())
    asyncio.run(middleware({"type": "http", "method": "POST", "headers": []}, receive, send))
    assert seen == [receive]
