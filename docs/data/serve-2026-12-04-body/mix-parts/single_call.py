"""CPU of one request scored alone: a batch of one, as a prediction in the mix usually is.

    GENREC_STORE_DIR=/tmp/bench-store .venv/bin/python single_call.py

SQLite and the in-process cache unless GENREC_DATABASE_URL (and GENREC_REDIS_URL) say
otherwise (docs/data/serve-2026-12-04-cache/run.sh runs it on Postgres + Redis).

Calls the recommender directly (no HTTP), one coroutine, 2,000 calls after 200 warm-up
ones; prints CPU (all threads) and wall microseconds per call.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any


def main() -> None:
    os.environ.setdefault("GENREC_STORE_DIR", "/tmp/bench-store")
    os.environ.setdefault("GENREC_DATABASE_URL", f"sqlite:///{tempfile.mkdtemp()}/genrec.db")
    os.environ.update(
        GENREC_ACCESS_LOG="false",
        GENREC_TORCH_THREADS="1",
    )
    import uvloop

    from app.main import create_app
    from app.serving.recommend import Filters

    app = create_app()

    async def run() -> None:
        async with app.router.lifespan_context(app):
            recommender = app.state.services.recommender
            items = [str(i) for i in range(1, 11)]
            calls: dict[str, Callable[[int], Awaitable[Any]]] = {
                "predict biased-mf": lambda u: recommender.predict(str(u), items, "biased-mf"),
                "recs mult-vae": lambda u: recommender.for_user(str(u), 10, None, Filters()),
            }
            for label, call in calls.items():
                for u in range(1, 944):  # every user's state cached first
                    await call(u)
                n = 2000
                cpu, wall = time.process_time(), time.perf_counter()
                for i in range(n):
                    await call(i % 943 + 1)
                cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
                print(f"{label}, alone: {cpu / n * 1e6:.0f} us CPU, {wall / n * 1e6:.0f} us wall")

    uvloop.run(run())


if __name__ == "__main__":
    main()
