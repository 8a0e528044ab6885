"""One similar-items list at a time, in process, on a serve_bench store: time per list,
the resident memory after loading and after the first list, and (after) whether the lists
came from the similar-items index.

    PYTHONPATH=<checkout> .venv/bin/python similar_call.py STORE [GENREC_ANN value]

Calls ``Recommender.similar`` directly (no HTTP) for items "2".."41" after one first call
(item "1"), k=10, no rules, then the same with MMR (a rule the synthetic items can take:
they have no attributes to filter, boost or cap by).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time


def rss_gib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30


def main() -> None:
    store, ann = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "on"
    os.environ.setdefault("GENREC_DATABASE_URL", f"sqlite:///{tempfile.mkdtemp()}/genrec.db")
    os.environ.update(
        GENREC_STORE_DIR=store, GENREC_ACCESS_LOG="false", GENREC_TORCH_THREADS="1", GENREC_ANN=ann
    )
    import uvloop

    from app.main import create_app
    from app.rules import ListRules

    app = create_app()

    async def run() -> None:
        async with app.router.lifespan_context(app):
            recommender = app.state.services.recommender
            model = recommender.holder.get("mult-vae")
            print(f"loaded {model.n_items:,} items; RSS {rss_gib():.2f} GiB")
            started = time.perf_counter()
            recommender.similar("1", 10, None)
            print(f"first list {time.perf_counter() - started:.2f} s; RSS {rss_gib():.2f} GiB")
            for label, rules in (
                ("plain", None),
                ("mmr 0.5", ListRules(mmr=0.5, key="mmr=0.5")),
            ):
                n = 40
                started = time.perf_counter()
                for i in range(n):
                    recommender.similar(str(i + 2), 10, None, rules)
                per = (time.perf_counter() - started) / n * 1000
                print(f"{label}: {per:.1f} ms per list (k=10, {n} items)")
            registry = app.state.services.metrics.registry
            rows = registry.get_sample_value("genrec_ann_rows_total", {"model": "mult-vae"})
            print(f"lists answered from an index: {rows or 0:.0f}; RSS {rss_gib():.2f} GiB")

    uvloop.run(run())


if __name__ == "__main__":
    main()
