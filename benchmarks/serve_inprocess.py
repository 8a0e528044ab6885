"""Serving costs without HTTP, network or a load-generator process, for docs/performance.md.

    .venv/bin/python benchmarks/serve_inprocess.py --store /tmp/bench-store

(the store ``serve_bench.py`` builds). Prints, on one torch thread:

* CPU microseconds per request when 32 coroutines call the ASGI app directly
  (``GET /v1/_bench/constant``, ``GET /v1/users/{id}/recommendations?k=10``, and
  the same with ``serve_bench.RULES_QUERY``'s filter and boost over the ML-100K
  catalog, imported from ``u.item`` first), i.e. genrec's own per-request cost
  without uvicorn or sockets;
* milliseconds per ``process_batch`` of 16 cached ML-100K users;
* microseconds per batch log query (``users_interactions``) for 16 users on SQLite;
* one full ``gc.collect()`` with the long-lived heap frozen (``app.core.heap``)
  and unfrozen.

Run it on two checkouts (``PYTHONPATH=<other checkout>``) to compare versions.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import timeit
from pathlib import Path


async def _drive(app, path: str, qs: bytes, conc: int, seconds: float) -> tuple[int, float]:  # type: ignore[no-untyped-def]
    async def one(c: int, n: int) -> None:
        p = path.format(user=(c * 7919 + n) % 943 + 1)
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
            "scheme": "http", "path": p, "raw_path": p.encode(), "query_string": qs,
            "root_path": "", "headers": [(b"host", b"bench")], "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 8000), "state": {},
        }  # fmt: skip
        sent: list[dict] = []

        async def receive() -> dict:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict) -> None:
            sent.append(message)

        await app(scope, receive, send)
        assert sent[0]["status"] == 200, sent

    count = 0

    async def worker(c: int, stop: float) -> None:
        nonlocal count
        n = 0
        while time.perf_counter() < stop:
            await one(c, n)
            n += 1
            count += 1

    await asyncio.gather(*(worker(c, time.perf_counter() + 1.0) for c in range(conc)))  # warm
    count = 0
    cpu = time.process_time()
    await asyncio.gather(*(worker(c, time.perf_counter() + seconds) for c in range(conc)))
    return count, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", required=True)
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp()
    os.environ.update(
        GENREC_STORE_DIR=args.store,
        GENREC_DATABASE_URL=f"sqlite:///{tmp}/genrec.db",
        GENREC_BENCH_ENDPOINTS="true",
        GENREC_ACCESS_LOG="false",
        GENREC_TORCH_THREADS="1",
    )
    import uvloop

    from app.main import create_app
    from benchmarks.serve_bench import RULES_QUERY, import_catalog

    data_dir = os.environ.get("GENREC_DATA_DIR")
    import_catalog(os.environ["GENREC_DATABASE_URL"], Path(data_dir) if data_dir else None)

    app = create_app()

    async def asgi() -> None:
        async with app.router.lifespan_context(app):
            for label, path, qs in (
                ("bare endpoint", "/v1/_bench/constant", b""),
                ("recommendations", "/v1/users/{user}/recommendations", b"k=10"),
                (
                    "recs + rules",
                    "/v1/users/{user}/recommendations",
                    b"k=10&" + RULES_QUERY.encode(),
                ),
            ):
                n, cpu = await _drive(app, path, qs, 32, args.seconds)
                print(f"ASGI, 32 concurrent, {label:>15}: {cpu / n * 1e6:6.0f} us CPU per request")
            services = app.state.services
            model = services.holder.get(None)
            from app.core.db import session_scope
            from app.repository import users_interactions
            from app.serving.batcher import RankJob, process_batch
            from app.serving.recommend import _banned

            users = [str(u) for u in range(1, 17)]
            jobs = [
                RankJob(state=None, banned=_banned(model, (), ()), allowed=None, k=10, user_id=u)
                for u in users
            ]
            resolve = services.recommender._resolve
            process_batch(model, jobs, resolve)  # caches the 16 states
            per = timeit.timeit(lambda: process_batch(model, jobs, resolve), number=300) / 300
            print(f"process_batch, 16 cached users: {per * 1e3:.2f} ms")

            def query() -> None:
                with session_scope(services.sessions) as session:
                    users_interactions(session, users, model.cutoff, [])

            per = timeit.timeit(query, number=2000) / 2000
            print(f"batch log query, 16 users, SQLite: {per * 1e6:.0f} us")

            import gc

            started = time.perf_counter()
            gc.collect()
            frozen = time.perf_counter() - started
            gc.unfreeze()  # what a full collection walks without app.core.heap
            tracked = len(gc.get_objects())
            started = time.perf_counter()
            gc.collect()
            print(
                f"full gc.collect() with the model loaded: {frozen * 1e3:.0f} ms frozen, "
                f"{(time.perf_counter() - started) * 1e3:.0f} ms over {tracked:,} objects unfrozen"
            )

    uvloop.run(asgi())


if __name__ == "__main__":
    main()
