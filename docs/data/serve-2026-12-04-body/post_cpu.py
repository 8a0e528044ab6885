"""In-process CPU per request of the POST routes: 32 coroutines call the ASGI app directly
(no uvicorn, no sockets), 1 s warm-up then 4 s measured, access log off; CPU of all threads.

    PYTHONPATH=<checkout> .venv/bin/python post_cpu.py /tmp/bench-store predict|adhoc|interactions [profile]

``profile`` adds a cProfile listing (cumulative). Run from the checkout to measure
(``cd /tmp/before`` for a worktree of the commit before).
"""

from __future__ import annotations

import asyncio
import cProfile
import json
import os
import pstats
import sys
import tempfile
import time
from typing import Any


def request_for(kind: str, conn: int, n: int) -> tuple[str, bytes]:
    """(path, JSON body) of request ``n`` of connection ``conn``, like serve_bench's."""
    user = (conn * 7919 + n) % 943 + 1
    if kind == "predict":
        items = [str(i) for i in range(1, 11)]
        body: dict[str, Any] = {"user_id": str(user), "item_ids": items, "model": "biased-mf"}
        return "/v1/predictions", json.dumps(body).encode()
    if kind == "adhoc":
        history = [{"item_id": str(i)} for i in range(user % 50 + 1, user % 50 + 11)]
        return "/v1/recommendations", json.dumps({"history": history, "k": 10}).encode()
    rows = [{"user_id": f"new-{conn}-{n}", "item_id": item, "rating": 4} for item in ("5", "7")]
    return "/v1/interactions", json.dumps({"interactions": rows}).encode()


async def call(app: Any, kind: str, conn: int, n: int) -> None:
    path, body = request_for(kind, conn, n)
    headers = [
        (b"host", b"bench"),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": headers, "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 8000), "state": {},
    }  # fmt: skip
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    assert sent[0]["status"] in (200, 201), sent


async def drive(app: Any, kind: str, seconds: float) -> int:
    count = 0

    async def worker(conn: int, stop: float) -> None:
        nonlocal count
        n = 0
        while time.perf_counter() < stop:
            await call(app, kind, conn, n)
            n += 1
            count += 1

    stop = time.perf_counter() + seconds
    await asyncio.gather(*(worker(conn, stop) for conn in range(32)))
    return count


def main() -> None:
    store, kind = sys.argv[1], sys.argv[2]
    profile = len(sys.argv) > 3 and sys.argv[3] == "profile"
    os.environ.update(
        GENREC_STORE_DIR=store,
        GENREC_DATABASE_URL=f"sqlite:///{tempfile.mkdtemp()}/genrec.db",
        GENREC_BENCH_ENDPOINTS="true",
        GENREC_ACCESS_LOG="false",
        GENREC_TORCH_THREADS="1",
    )
    import uvloop

    from app.main import create_app

    app = create_app()

    async def run() -> None:
        async with app.router.lifespan_context(app):
            await drive(app, kind, 1.0)
            profiler = cProfile.Profile() if profile else None
            cpu = time.process_time()
            if profiler is not None:
                profiler.enable()
            n = await drive(app, kind, 4.0)
            if profiler is not None:
                profiler.disable()
            cpu = time.process_time() - cpu
            print(f"{kind}: {n} requests, {cpu / n * 1e6:.0f} us CPU per request (all threads)")
            if profiler is not None:
                pstats.Stats(profiler).sort_stats("cumulative").print_stats(45)

    uvloop.run(run())


if __name__ == "__main__":
    main()
