"""``serve_bench --load wrk`` sends what the Python load generator sends.

wrk runs against a small asyncio server that records each request and answers
``{}``; every request of the first few hundred must equal
``serve_bench.request_bytes`` for the same kind (wrk builds one request before
its connections start and never sends it, so its n-th request sent is the
Python client's n+1-th).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from benchmarks.serve_bench import WRK_SCRIPT, request_bytes
from tests.conftest import require_tool

USERS = [str(u) for u in range(1, 944)]
ITEMS = [str(i) for i in range(1, 1001)]


def _split(raw: bytes) -> tuple[str, Any]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0].decode(), json.loads(body) if body else None


async def _record(kind: str) -> tuple[list[bytes], str]:
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line[15:])
                seen.append(head + (await reader.readexactly(length) if length else b""))
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    proc = await asyncio.create_subprocess_exec(
        "wrk", "-t1", "-c1", "-d1s", "-s", str(WRK_SCRIPT), f"http://127.0.0.1:{port}", "--", kind,
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await proc.communicate()
    server.close()
    return seen, out.decode()


@pytest.mark.parametrize(
    "kind", ["constant", "recs", "recs-rules", "predict", "interactions", "mix", "similar"]
)
def test_wrk_sends_the_python_clients_requests(kind: str) -> None:
    require_tool("wrk", "this test runs wrk's script of serve_bench --load wrk")
    seen, out = asyncio.run(_record(kind))
    assert len(seen) >= 200
    for n, raw in enumerate(seen[:200]):
        assert _split(raw) == _split(request_bytes(kind, 0, n + 1, USERS, ITEMS)), n
    result = json.loads(out.strip().splitlines()[-1])  # the line run_wrk reads
    assert result["requests"] >= len(seen[:200]) and result["non2xx"] == 0
    assert result["p99_ms"] >= result["p50_ms"] >= 0


def _authorization(raw: bytes) -> list[bytes]:
    head = raw.partition(b"\r\n\r\n")[0].split(b"\r\n")[1:]
    return [line for line in head if line.lower().startswith(b"authorization:")]


@pytest.mark.parametrize("kind", ["constant", "recs", "predict", "mix"])
def test_both_clients_send_the_api_key(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--api-key`` (BENCH_API_KEY): a keyed server answered every request 401."""
    require_tool("wrk", "this test runs wrk's script of serve_bench --load wrk")
    from benchmarks import serve_bench

    key = "bench-key-0123456789abcdef"
    monkeypatch.setenv("BENCH_API_KEY", key)
    monkeypatch.setattr(serve_bench, "API_KEY", key)
    seen, _ = asyncio.run(_record(kind))
    expected = [f"Authorization: Bearer {key}".encode()]
    for n, raw in enumerate(seen[:100]):
        assert _split(raw) == _split(request_bytes(kind, 0, n + 1, USERS, ITEMS)), n
        assert _authorization(raw) == expected, raw
        assert _authorization(request_bytes(kind, 0, n + 1, USERS, ITEMS)) == expected
    monkeypatch.setattr(serve_bench, "API_KEY", None)
    assert _authorization(request_bytes(kind, 0, 1, USERS, ITEMS)) == []
