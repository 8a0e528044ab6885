"""Recall against speed of the approximate-retrieval settings, in process, one core.

For a store built by ``serve_bench.py --store DIR --items N --dims D --catalog
correlated`` (or any store whose model has a retrieval index) this ranks the
same users through the serving code (``app.serving.batcher.rank_batch``) in
batches of 32, once exactly and once per ``nprobe`` (and candidate count), and
reports per setting: Recall@100 of the approximate top-100 against the exact
top-100 (seen items masked, as the API does), and rows ranked per second. It
writes a JSON file and a PNG of recall against speed (docs/img/).

Users: every training user of the version (ML-100K: 943) plus ad-hoc
histories of 10 random items up to ``--users``. ``--boost SHARE:WEIGHT`` ranks
every list (exact and approximate) with a boost on a random share of the items.

    python benchmarks/ann_sweep.py --store /tmp/s1m --json ann-1m.json --png docs/img/ann-recall-speed.png
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

BATCH = 32


def _jobs(model: Any, n_users: int, k: int, seed: int = 0) -> list[Any]:
    import torch

    from app.serving.batcher import RankJob
    from training.models.base import History

    rng = np.random.default_rng(seed)
    known = model.history.shape[0]
    rows = [model.history[u].indices.astype(np.int64) for u in range(min(known, n_users))]
    while len(rows) < n_users:  # ad-hoc users: 10 random trained items each
        rows.append(np.sort(rng.choice(model.history.shape[1], 10, replace=False)))
    jobs = []
    for start in range(0, len(rows), 256):
        chunk = rows[start : start + 256]
        history = History.from_lists(chunk, None, model.n_items)
        with torch.inference_mode():
            states = model.scorer.user_state(torch.full((len(chunk),), -1), history)
        jobs += [RankJob(states[b : b + 1], seen, None, k) for b, seen in enumerate(chunk)]
    return jobs


def _boosted(jobs: list[Any], n_items: int, spec: str, seed: int = 0) -> list[Any]:
    """``jobs`` with one boost plan: WEIGHT on a random SHARE of the items (``--boost``)."""
    import dataclasses

    import torch

    from app.rules.compile import RulePlan

    share, weight = (float(part) for part in spec.split(":"))
    offset = torch.zeros(n_items)
    chosen = np.random.default_rng(seed).choice(n_items, round(share * n_items), replace=False)
    offset[torch.as_tensor(chosen)] = weight
    plan = RulePlan(keep=None, drop=None, offset=offset)
    return [dataclasses.replace(job, rules=plan) for job in jobs]


def _timed(rank: Any, model: Any, jobs: list[Any]) -> tuple[list[Any], float]:
    """Ranked lists and rows per second, ranked in batches of ``BATCH``."""
    out = []
    started = time.perf_counter()
    for start in range(0, len(jobs), BATCH):
        out += rank(model, jobs[start : start + BATCH])
    return out, len(jobs) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--model", default="mult-vae")
    parser.add_argument("--users", type=int, default=1043)
    parser.add_argument("--nprobe", default="1,2,4,8,16,32,64")
    parser.add_argument("--candidates", default="200")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--png", type=Path)
    parser.add_argument("--label", default="", help="catalog name for the plot legend")
    parser.add_argument(
        "--boost",
        metavar="SHARE:WEIGHT",
        help="rank every list with a boost of WEIGHT (in score spreads) on a random SHARE of "
        "the items, e.g. 0.2:1.0 (app.serving.ann_rules)",
    )
    parser.add_argument(
        "--compare-hnsw",
        action="store_true",
        help="also build HNSW-flat (IP) and compare raw FAISS searches with IVF-flat's",
    )
    args = parser.parse_args()

    import faiss
    import torch

    from app.core.config import Settings
    from app.serving.batcher import rank_batch, rank_exact
    from app.serving.loaded import build_loaded_model
    from app.serving.retrieval import AnnLoader
    from models_store import ModelStore

    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    store = ModelStore(args.store)
    version = store.resolve(args.model)
    t0 = time.perf_counter()
    model = build_loaded_model(store.load(args.model, version), torch.device("cpu"))
    model = AnnLoader(Settings(_env_file=None, ann="on"))(model)  # type: ignore[call-arg]
    if model.ann is None:
        raise SystemExit(f"{args.model} version {version} has no retrieval index")
    print(
        f"# loaded {args.model}@{version} ({model.n_items:,} items) in {time.perf_counter() - t0:.0f} s"
    )
    jobs = _jobs(model, args.users, 100)
    if args.boost:
        jobs = _boosted(jobs, model.n_items, args.boost)
    exact, exact_rate = _timed(rank_exact, model, jobs)
    print(f"# exact: {exact_rate:.1f} rows/s", flush=True)
    ivf = faiss.extract_index_ivf(model.ann.index)
    results: list[dict[str, Any]] = []
    for candidates in [int(c) for c in args.candidates.split(",")]:
        model.ann.candidates = candidates
        for nprobe in [int(p) for p in args.nprobe.split(",")]:
            ivf.nprobe = nprobe
            ranked, rate = _timed(rank_batch, model, jobs)
            recall = float(
                np.mean(
                    [
                        len(set(a.items.tolist()) & set(e.items.tolist())) / max(len(e.items), 1)
                        for a, e in zip(ranked, exact, strict=True)
                    ]
                )
            )
            fallbacks = sum(r.retrieval not in ("ann", "exact") for r in ranked)
            row = {
                "nprobe": nprobe,
                "nlist": int(ivf.nlist),
                "candidates": candidates,
                "recall@100": round(recall, 4),
                "rows_per_s": round(rate, 1),
                "speedup": round(rate / exact_rate, 1),
                "fallbacks": fallbacks,
            }
            results.append(row)
            print(json.dumps(row), flush=True)
    compared = compare_index_types(model, jobs, exact) if args.compare_hnsw else None
    report = {
        "index_types": compared,
        "model": args.model,
        "version": version,
        "items": model.n_items,
        "users": len(jobs),
        "batch": BATCH,
        "boost": args.boost,
        "exact_rows_per_s": round(exact_rate, 1),
        "settings": results,
        "command": " ".join(sys.argv),
    }
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    if args.png:
        plot([report], args.png, [args.label or f"{model.n_items:,} items"])


def compare_index_types(model: Any, jobs: list[Any], exact: list[Any]) -> list[dict[str, Any]]:
    """Raw FAISS top-100 (no masks, no re-scoring) of IVF-flat and HNSW-flat, same table:
    build seconds, Recall@100 against the exact unmasked top-100, queries per second."""
    import faiss
    import torch

    from training.ann import build_index, item_table

    table = item_table(model.scorer)
    states = torch.cat([job.state for job in jobs])
    with torch.inference_mode():
        queries = np.ascontiguousarray(model.scorer.inner_product_queries(states).float().numpy())
    truth = np.argsort(-(queries @ table.T), axis=1)[:, :100]
    out: list[dict[str, Any]] = []

    def measure(kind: str, index: Any, knob: str, value: int, build_s: float) -> None:
        started = time.perf_counter()
        _, found = index.search(queries, 100)
        rate = len(queries) / (time.perf_counter() - started)
        recall = float(
            np.mean([len(set(f) & set(t)) / 100 for f, t in zip(found, truth, strict=True)])
        )
        row = {
            "index": kind,
            knob: value,
            "build_s": round(build_s, 1),
            "recall@100": round(recall, 4),
            "queries_per_s": round(rate, 1),
        }
        out.append(row)
        print(json.dumps(row), flush=True)

    started = time.perf_counter()
    ivf, _ = build_index(table)
    ivf_build = time.perf_counter() - started
    for nprobe in (4, 8, 16, 32):
        faiss.extract_index_ivf(ivf).nprobe = nprobe
        measure("ivf-flat", ivf, "nprobe", nprobe, ivf_build)
    started = time.perf_counter()
    hnsw = faiss.IndexHNSWFlat(table.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = 80
    hnsw.add(table)
    hnsw_build = time.perf_counter() - started
    for ef in (128, 256, 512, 1024):
        hnsw.hnsw.efSearch = ef
        measure("hnsw-flat M=32", hnsw, "efSearch", ef, hnsw_build)
    return out


def plot(reports: list[dict[str, Any]], png: Path, labels: list[str]) -> None:
    """Recall@100 (0-1) against rows ranked per second (log axis, labelled ticks)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for report, label, color in zip(
        reports, labels, ("tab:blue", "tab:orange", "tab:green"), strict=False
    ):
        rows = sorted(report["settings"], key=lambda r: r["nprobe"])
        x = [r["rows_per_s"] for r in rows]
        y = [r["recall@100"] for r in rows]
        ax.plot(x, y, "o-", color=color, label=f"{label}: IVF-flat, nprobe as marked")
        for r in rows:
            ax.annotate(
                str(r["nprobe"]),
                (r["rows_per_s"], r["recall@100"]),
                fontsize=7,
                xytext=(3, -10),
                textcoords="offset points",
                color=color,
            )
        ax.plot([report["exact_rows_per_s"]], [1.0], "s", color=color, label=f"{label}: exact")
    ax.axhline(0.95, color="grey", linestyle=":", linewidth=1, label="target recall 0.95")
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator([5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000]))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("users ranked per second, one core, batches of 32 (log scale)")
    ax.set_ylabel("Recall@100 vs exact top-100")
    ax.set_ylim(0.0, 1.02)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    ax.set_title("Approximate retrieval: recall against speed (synthetic correlated catalogs)")
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=120)


if __name__ == "__main__":
    if (
        len(sys.argv) > 1 and sys.argv[1] == "plot"
    ):  # plot JSON reports: plot OUT.png A.json:label ...
        out = Path(sys.argv[2])
        pairs = [arg.rsplit(":", 1) for arg in sys.argv[3:]]
        plot(
            [json.loads(Path(p).read_text()) for p, _ in pairs], out, [label for _, label in pairs]
        )
    else:
        main()
