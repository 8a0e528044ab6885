"""In-process CPU per request of the serve benchmark's mixed cell, and of known-user lists.

32 coroutines call the ASGI app directly (no uvicorn, no sockets, no wrk sharing the
cores), each sending the request sequence ``benchmarks/wrk/serve_bench.lua`` sends for
its kind (``recs`` or ``mix``: 60% known-user lists, 15% two-row writes for new users, 10%
new users' lists, 10% ad-hoc histories of 10 items, 5% predictions of 10 items); 2 s
warm-up, then 6 s measured; CPU of all the process's threads per request.

    PYTHONPATH=<checkout> .venv/bin/python mix_cpu.py /tmp/bench-store recs|mix

SQLite unless GENREC_DATABASE_URL (and GENREC_REDIS_URL) say otherwise. Run from the
checkout to measure (``cd /tmp/before`` for a worktree of an older commit).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from typing import Any

MIX = [(60, "recs"), (15, "mix-write"), (10, "mix-new-recs"), (10, "mix-adhoc"), (5, "predict")]
N_USERS, N_ITEMS = 943, 1000


def mix_kind(conn: int, n: int) -> str:
    """The Lua script's ``mix_kind``: the same kind for the same (connection, request)."""
    slot = (n * 37 + conn * 11) % 100
    for share, kind in MIX:
        if slot < share:
            return kind
        slot -= share
    raise AssertionError("shares add up to 100")


def request_for(kind: str, conn: int, n: int) -> tuple[str, str, bytes, bytes]:
    """(method, path, query, body) of request ``n`` of connection ``conn``, as the Lua builds it."""
    if kind == "mix":
        kind = mix_kind(conn, n)
    user = str((conn * 7919 + n) % N_USERS + 1)
    new_user = f"mix-{conn}-{n // 20}"
    start = (n * 10) % (N_ITEMS - 10)
    items = [str(start + j + 1) for j in range(10)]
    if kind == "recs":
        return "GET", f"/v1/users/{user}/recommendations", b"k=10", b""
    if kind == "mix-new-recs":
        return "GET", f"/v1/users/{new_user}/recommendations", b"k=10", b""
    if kind == "predict":
        body: Any = {"user_id": user, "item_ids": items, "model": "biased-mf"}
        return "POST", "/v1/predictions", b"", json.dumps(body).encode()
    if kind == "mix-write":
        rows = [
            {"user_id": new_user, "item_id": str((n + j * 500) % N_ITEMS + 1), "rating": 4}
            for j in range(2)
        ]
        return "POST", "/v1/interactions", b"", json.dumps({"interactions": rows}).encode()
    if kind == "mix-adhoc":
        body = {"history": [{"item_id": i} for i in items], "k": 10}
        return "POST", "/v1/recommendations", b"", json.dumps(body).encode()
    raise ValueError(kind)


async def call(app: Any, kind: str, conn: int, n: int) -> None:
    method, path, query, body = request_for(kind, conn, n)
    headers = [(b"host", b"bench")]
    if body:
        headers += [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": query,
        "root_path": "", "headers": headers, "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 8000), "state": {},
    }  # fmt: skip
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    assert sent[0]["status"] in (200, 201), (path, sent)


async def drive(app: Any, kind: str, seconds: float, first: list[int]) -> int:
    count = 0

    async def worker(conn: int, stop: float) -> None:
        nonlocal count
        n = first[conn]
        while time.perf_counter() < stop:
            await call(app, kind, conn, n)
            n += 1
            count += 1
        first[conn] = n  # the measured run goes on where the warm-up stopped

    stop = time.perf_counter() + seconds
    await asyncio.gather(*(worker(conn, stop) for conn in range(32)))
    return count


def main() -> None:
    store, kind = sys.argv[1], sys.argv[2]
    os.environ.setdefault("GENREC_DATABASE_URL", f"sqlite:///{tempfile.mkdtemp()}/genrec.db")
    os.environ.update(GENREC_STORE_DIR=store, GENREC_ACCESS_LOG="false", GENREC_TORCH_THREADS="1")
    import uvloop

    from app.main import create_app

    app = create_app()

    async def run() -> None:
        async with app.router.lifespan_context(app):
            first = [0] * 32
            await drive(app, kind, 2.0, first)
            registry = app.state.services.metrics.registry

            def redis_lookups() -> float:
                """Users whose state was asked of Redis (every lookup but memory-tier hits)."""
                counts = [
                    registry.get_sample_value(f"genrec_cache_{name}_total") or 0.0
                    for name in ("hits", "misses", "local_hits")
                ]
                return counts[0] + counts[1] - counts[2]

            asked = redis_lookups()
            cpu, wall = time.process_time(), time.perf_counter()
            n = await drive(app, kind, 6.0, first)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            asked = redis_lookups() - asked
            print(
                f"{kind}: {n / wall:.0f} req/s, {cpu / n * 1e6:.0f} us CPU per request, "
                f"{asked / n:.3f} Redis state lookups per request"
            )

    uvloop.run(run())


if __name__ == "__main__":
    main()
