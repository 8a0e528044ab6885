"""CPU of one micro-batch by its size: ``process_batch`` called directly (no HTTP, no
event loop) on known users whose states are cached; CPU of the calling thread.

    cd <checkout> && PYTHONPATH=$PWD /work/main/.venv/bin/python \
        /work/main/docs/data/serve-2026-12-06-predict-batch/batch_cost.py biased-mf|mult-vae

A prediction job rates 10 items; a ranking job asks for 10. SQLite unless
GENREC_DATABASE_URL (and GENREC_REDIS_URL) say otherwise; PROF=<batch size> adds a
cProfile (thread CPU) of 300 batches of that size. Needs a serve_bench store in
/tmp/bench-store.
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import sys
import tempfile
import time


def main() -> None:
    os.environ.setdefault("GENREC_DATABASE_URL", f"sqlite:///{tempfile.mkdtemp()}/genrec.db")
    os.environ.update(
        GENREC_STORE_DIR="/tmp/bench-store", GENREC_ACCESS_LOG="false", GENREC_TORCH_THREADS="1"
    )
    import numpy as np
    import uvloop

    from app.main import create_app
    from app.serving.batcher import RankJob, process_batch

    name = sys.argv[1] if len(sys.argv) > 1 else "mult-vae"
    app = create_app()

    def jobs(size: int, first: int) -> list[RankJob]:
        none = np.zeros(0, np.int64)
        users = [str((first + j) % 943 + 1) for j in range(size)]
        if name == "biased-mf":
            return [RankJob(None, none, None, 0, user_id=u, predict=np.arange(10)) for u in users]
        return [RankJob(None, none, None, 10, user_id=u) for u in users]

    async def run() -> None:
        async with app.router.lifespan_context(app):
            recommender = app.state.services.recommender
            model = recommender.holder.get(name)
            resolve = recommender._resolve
            for first in range(0, 943, 16):  # every user's state cached first
                process_batch(model, jobs(16, first), resolve)
            for size in (1, 2, 4, 9, 16, 32):
                n = 300
                cpu = time.thread_time()
                for i in range(n):
                    process_batch(model, jobs(size, i * size), resolve)
                print(f"{name} B={size}: {(time.thread_time() - cpu) / n * 1e6:.0f} us per batch")
            if os.environ.get("PROF"):
                size = int(os.environ["PROF"])
                profile = cProfile.Profile(time.thread_time)
                profile.enable()
                for i in range(300):
                    process_batch(model, jobs(size, i * size), resolve)
                profile.disable()
                out = io.StringIO()
                pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(30)
                print(out.getvalue())

    uvloop.run(run())


if __name__ == "__main__":
    main()
