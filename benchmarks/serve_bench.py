"""Serving benchmark: latency and throughput of a real ``genrec serve`` on loopback.

What it does:

1. Builds a model store unless ``--store`` names one: Mult-VAE and biased-MF
   trained quickly on MovieLens-100K (``GENREC_DATA_DIR``). With ``--items N``
   the Mult-VAE version is replaced by a synthetic catalog of N items: the
   same model shape (encoder input and decoder output widened to N, random
   values), written as a real artifact, so scoring cost scales as in production.
   ``--dims D`` sets that model's hidden width (the item table's width) and
   ``--catalog correlated`` draws the new rows from the trained rows' mean and
   covariance instead of independently (see ``widen_catalog``); the widened
   version gets its approximate-retrieval index (build time and size printed).
2. Starts ``genrec serve`` as a subprocess with ``GENREC_BENCH_ENDPOINTS=true``
   (which mounts ``GET /v1/_bench/constant``, a route that does nothing).
3. For each endpoint and each concurrency (default 1, 8, 32, 128) runs a
   separate load-generator *process*: an asyncio (uvloop) HTTP/1.1 keep-alive
   client with one connection per concurrent user, closed loop, for
   ``--duration`` seconds after a warm-up. It prints p50/p95/p99 latency, req/s
   and the ratio of req/s to the bare endpoint's at the same concurrency.
4. With ``--server-env GENREC_ANN=on`` (or ``=auto``): asks this server and a second one with
   ``GENREC_ANN=off`` (same store) for top-100 lists of ``--recall-users``
   users (every ML-100K user, then ad-hoc histories) and prints
   ``ann_recall@100=<mean overlap> users=<n>`` and the ANN metrics.

Endpoints: ``constant`` (the HTTP stack's ceiling), ``recs`` (GET
/v1/users/{id}/recommendations?k=10 over the ML-100K user ids), ``predict``
(POST /v1/predictions, 10 items, biased-mf), ``interactions`` (POST
/v1/interactions, one new event per request), ``mix`` (the mixed traffic of
``MIX``: 60% known-user recs, 15% two-row interaction writes of new users, 10%
recs for those new users, 10% ad-hoc histories of 10 items, 5% predictions of
10 items; with ``recs`` in the same run it prints ``mix_vs_recs@<conc>=``), and
each of the mix's own kinds alone (``mix-write``, ``mix-new-recs``, ``mix-adhoc``).

Usage::

    python benchmarks/serve_bench.py                                  # embedded: SQLite + in-process cache
    python benchmarks/serve_bench.py --database-url postgresql+psycopg://postgres@127.0.0.1/genrec_bench \\
        --redis-url redis://127.0.0.1:6379/0                          # production-like
    python benchmarks/serve_bench.py --items 100000 --endpoints constant,recs
    python benchmarks/serve_bench.py --server-env GENREC_BATCH_WAIT_MS=0   # any server setting
    python benchmarks/serve_bench.py --impressions-ab --repeat 3     # recs, impressions on vs off
    python benchmarks/serve_bench.py --rules-ab --repeat 3           # recs, a filter + boost vs none
    python benchmarks/serve_bench.py --rules-ab --rules-query 'boost=...'   # other rules
    python benchmarks/serve_bench.py --items 1000000 --dims 256 --catalog correlated \
        --endpoints constant,recs --server-env GENREC_ANN=on          # + ann_recall@100 line

``--api-key KEY`` (or ``BENCH_API_KEY``) benchmarks a keyed server: it starts the server
with ``GENREC_API_KEYS=KEY`` and every request (both load generators, the probes) sends
``Authorization: Bearer KEY``.

``--load wrk`` measures the same cells with ``wrk`` (``benchmarks/wrk/serve_bench.lua``
builds the same requests), the C client the issue's figures came from: it
takes less of a small machine's CPU than the Python client.

The load generator shares the machine with the server: on a small machine its
own CPU use lowers every figure, the bare endpoint's included, which is why
the ratio is the figure to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

#: The mixed cell (``mix``): share of each request kind, in percent (issue #20).
MIX = (
    (60, "recs"),  # known users
    (15, "mix-write"),  # interactions of new users, two rows per request
    (10, "mix-new-recs"),  # recommendations for those new users (fold-in from the log)
    (10, "mix-adhoc"),  # ad-hoc histories of 10 items
    (5, "predict"),  # predictions of 10 items
)
#: The mix's own kinds, each also a cell by itself (to see which part of the mix costs).
MIX_PARTS = tuple(kind for _, kind in MIX if kind.startswith("mix-"))
#: What a run measures unless ``--endpoints`` says otherwise.
DEFAULT_ENDPOINTS = ("constant", "recs", "predict", "interactions", "mix")
ENDPOINTS = (*DEFAULT_ENDPOINTS, *MIX_PARTS, "similar")


def mix_kind(conn: int, n: int) -> str:
    """The kind of the n-th request of connection ``conn`` in the mixed cell; every 100
    consecutive requests of a connection hold each kind in its exact share."""
    slot = (n * 37 + conn * 11) % 100  # 37 is prime to 100: a permutation of 0..99
    for share, kind in MIX:
        if slot < share:
            return kind
        slot -= share
    raise AssertionError("MIX adds up to 100")


#: ``--rules-ab``: the typical rules of a filtered list (docs/rules.md): a genre filter,
#: a year range and a boost of recent films, as query parameters of ``recs``.
TYPICAL_RULES = "&".join(
    f"{name}={quote(value, safe='')}"
    for name, value in (
        ("filter", "genres:Comedy,Drama,Action"),
        ("filter", "year>=1980"),
        ("boost", "year>=1995^0.5"),
    )
)
#: The rules ``recs-rules`` sends: ``--rules-query`` sets ``BENCH_RULES`` (an encoded query
#: string), which the load generators (this module's ``_load`` process, the wrk script) read.
RULES_QUERY = os.environ.get("BENCH_RULES") or TYPICAL_RULES
#: ``--api-key`` sets ``BENCH_API_KEY``, which the load generators (this module's ``_load``
#: process, the wrk script) send as a bearer key; unset: no Authorization header.
API_KEY = os.environ.get("BENCH_API_KEY") or None


def auth_headers() -> dict[str, str]:
    """The key's header for this module's own HTTP calls (probes, recall lists)."""
    return {"Authorization": f"Bearer {API_KEY}"} if API_KEY else {}


def _head() -> str:
    """The header lines every benchmark request carries, before the body's."""
    return f"Host: bench\r\nAuthorization: Bearer {API_KEY}\r\n" if API_KEY else "Host: bench\r\n"


RATING_MODEL = "biased-mf"


# --------------------------------------------------------------------------- store


def build_store(
    root: Path,
    data_dir: Path | None,
    items: int | None,
    dims: int | None = None,
    catalog: str = "iid",
    base: Path | None = None,
    index: bool = True,
) -> None:
    """Mult-VAE + biased-MF on ML-100K (quick settings); optionally a synthetic catalog.

    ``dims`` sets Mult-VAE's hidden width (the item table's width); ``catalog``
    how the synthetic rows are drawn (``widen_catalog``). With ``base`` the
    trained store is a copy of that one instead (a machine without the data
    set, or several catalog sizes widened from one training). The widened
    version gets its retrieval index as ``genrec models index`` would build it,
    unless ``index`` is false (a run that scores exactly need not pay the
    build: 340 s for a million items on one core).
    """
    import torch

    from models_store import ModelStore

    torch.set_num_threads(1)
    if base is not None:
        width = base_width(ModelStore(base))
        if dims is not None and dims != width:
            raise SystemExit(
                f"--dims {dims}: the base store's mult-vae is {width} wide, and a copy keeps "
                "its width; leave --dims out, or train a store of that width (no --base-store)"
            )
        shutil.copytree(base, root)
        store = ModelStore(root)
        print(f"# store copied from {base} (mult-vae {width} wide)")
    else:
        from training.data.datasets import load_dataset
        from training.pipeline import train_and_save

        data = load_dataset("ml-100k", data_dir=data_dir, allow_download=False)
        store = ModelStore(root)
        t0 = time.perf_counter()
        shape = {"hidden_dim": dims} if dims else {}
        config = {"epochs": 10, **shape}
        train_and_save(store, "mult-vae", data, config, source="ml-100k", promote=True)
        train_and_save(store, RATING_MODEL, data, {"epochs": 10}, source="ml-100k", promote=True)
        seconds = time.perf_counter() - t0
        print(f"# trained mult-vae and {RATING_MODEL} on ml-100k in {seconds:.0f} s")
    if items is not None:
        t0 = time.perf_counter()
        version = widen_catalog(store, "mult-vae", items, catalog=catalog)
        print(f"# widened mult-vae to {items:,} items in {time.perf_counter() - t0:.0f} s")
        if index:
            index_catalog(store, "mult-vae", version)


def base_width(store: Any) -> int:
    """The hidden width (item-table width) of a store's production Mult-VAE."""
    manifest = store.manifest("mult-vae", store.resolve("mult-vae"))
    return int(manifest.hyper_parameters["hidden_dim"])


def index_catalog(store: Any, model: str, version: str) -> None:
    """Build the version's retrieval index (``genrec models index``); print its cost."""
    import faiss

    from training.ann import IndexParams, index_memory_bytes, index_version, read_index

    faiss.omp_set_num_threads(1)  # the build's figure is for one core, like serving's
    manifest = index_version(store, model, version)
    params = IndexParams.from_dict(manifest.retrieval)
    size = manifest.files[params.file]["bytes"]
    path = store.backend.location(f"{model}/versions/{version}/{params.file}")
    memory = index_memory_bytes(read_index(path, params))
    print(
        f"# ann index: {params.kind} over {params.n_items:,} x {params.dims}, nlist={params.nlist}, "
        f"nprobe={params.nprobe}; built in {params.build_seconds:.1f} s on 1 thread; "
        f"file {size / 2**20:,.0f} MiB, searched data {memory / 2**20:,.0f} MiB (memory-mapped)",
        flush=True,
    )


def widen_catalog(store: Any, model: str, n_items: int, seed: int = 0, catalog: str = "iid") -> str:
    """Publish a version of ``model`` with ``n_items`` random items (same shapes otherwise).

    Every tensor with an item axis is regrown to ``n_items`` rows; users and their
    histories are kept, so fold-in, seen-item masking and the cache work exactly as
    with the real model. ``catalog``:

    * ``iid``: every value drawn independently with the trained tensor's mean/std.
      Scoring cost is realistic; the geometry is not (no correlations at all: a
      worst case for any approximate index).
    * ``correlated``: each new item's values across all item-axis tensors (its
      encoder row, decoder row and bias) drawn jointly from a Gaussian with the
      trained items' mean and covariance, so the catalog has the trained table's
      spectrum (its shared "popularity" direction included) but no copies of it.
    """
    from models_store import VersionContents

    loaded = store.load(model, store.resolve(model, "production"))
    manifest, contents = loaded.manifest, loaded.contents
    old = len(contents.item_ids)
    if n_items < old:
        raise SystemExit(f"--items must be at least the real catalog's {old}")
    rng = np.random.default_rng(seed)
    tensors = {}
    if catalog == "correlated":
        tensors = _correlated_rows(contents.tensors, old, n_items, rng)
    for name, array in contents.tensors.items():
        if name in tensors:
            continue
        axis = next((a for a, size in enumerate(array.shape) if size == old), None)
        if axis is None:
            tensors[name] = array
            continue
        shape = list(array.shape)
        shape[axis] = n_items
        fresh = rng.standard_normal(size=shape, dtype=np.float32)  # float32: 1M x 600 fits
        fresh *= float(array.std()) + 1e-6
        fresh += float(array.mean())
        tensors[name] = fresh.astype(array.dtype, copy=False)
    item_ids = [*contents.item_ids, *(f"syn{i}" for i in range(n_items - old))]
    config = {**manifest.scorer_config, "n_items": n_items}
    data = manifest.data
    widened = VersionContents(
        tensors=tensors, user_ids=contents.user_ids, item_ids=item_ids, history=contents.history
    )
    saved = store.save(
        model,
        widened,
        scorer_config=config,
        hyper_parameters=manifest.hyper_parameters,
        metrics={},
        data=type(data)(**{**data.to_dict(), "n_items": n_items, "source": "synthetic"}),
        training={"synthetic_items": n_items},
    )
    store.promote(model, saved.version)
    print(f"# {model} version {saved.version}: synthetic {catalog} catalog of {n_items:,} items")
    return saved.version


def _correlated_rows(
    tensors: dict[str, np.ndarray], old: int, n_items: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Tensors whose first axis is the item axis, regrown jointly from N(mean, cov) of the
    trained rows (drawn in chunks: a million rows of 513 values is 2 GB at once)."""
    names = [n for n, a in tensors.items() if a.shape[0] == old and a.ndim <= 2]
    widths = [1 if tensors[n].ndim == 1 else tensors[n].shape[1] for n in names]
    joint = np.hstack([tensors[n].reshape(old, -1).astype(np.float64) for n in names])
    mean = joint.mean(axis=0)
    cov = np.cov(joint, rowvar=False) + 1e-9 * np.eye(joint.shape[1])
    factor = np.linalg.cholesky(cov).astype(np.float32)
    out = {n: np.empty((n_items, w), dtype=np.float32) for n, w in zip(names, widths, strict=True)}
    for start in range(0, n_items, 65_536):
        stop = min(start + 65_536, n_items)
        rows = rng.standard_normal((stop - start, joint.shape[1]), dtype=np.float32) @ factor.T
        rows += mean.astype(np.float32)
        col = 0
        for n, w in zip(names, widths, strict=True):
            out[n][start:stop] = rows[:, col : col + w]
            col += w
    return {n: (out[n] if tensors[n].ndim == 2 else out[n][:, 0]) for n in names}


# --------------------------------------------------------------------------- server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def genrec_command() -> list[str]:
    """The installed ``genrec`` script beside this interpreter, else ``python -m app.cli``
    (a machine where the source is on PYTHONPATH but not installed, like the lent GPU's)."""
    script = Path(sys.executable).parent / "genrec"
    return [str(script)] if script.exists() else [sys.executable, "-m", "app.cli"]


def start_server(
    args: argparse.Namespace, store: Path, workdir: Path, extra_env: tuple[str, ...] = ()
) -> tuple[Any, int]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENREC_")}
    env.update(
        GENREC_STORE_DIR=str(store),
        GENREC_BENCH_ENDPOINTS="true",
        GENREC_DATABASE_URL=args.database_url or f"sqlite:///{workdir}/genrec.db",
    )
    if args.redis_url:
        env["GENREC_REDIS_URL"] = args.redis_url
        env["GENREC_CACHE_NAMESPACE"] = f"bench-{port}"
    if API_KEY:
        env["GENREC_API_KEYS"] = API_KEY  # --server-env may still set others
    for pair in [*args.server_env, *extra_env]:
        key, _, value = pair.partition("=")
        env[key] = value
    log = (workdir / f"server-{port}.log").open("wb")
    proc = subprocess.Popen(
        [*genrec_command(), "serve", "--port", str(port), "--workers", str(args.workers)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    import httpx

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = (workdir / f"server-{port}.log").read_text(errors="replace").splitlines()[-30:]
            print("\n".join(tail), file=sys.stderr)
            raise SystemExit(f"genrec serve exited; see {workdir / f'server-{port}.log'}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return proc, port
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("genrec serve did not become ready in 120 s")


# --------------------------------------------------------------------------- load generator


def request_bytes(kind: str, conn: int, n: int, users: list[str], items: list[str]) -> bytes:
    """The n-th request of connection ``conn`` for endpoint ``kind`` (HTTP/1.1, keep-alive)."""
    if kind == "mix":
        kind = mix_kind(conn, n)
    if kind == "constant":
        return f"GET /v1/_bench/constant HTTP/1.1\r\n{_head()}\r\n".encode()
    if kind == "mix-new-recs":  # a user the mix-write requests of this connection log
        path = f"/v1/users/mix-{conn}-{n // 20}/recommendations?k=10"
        return f"GET {path} HTTP/1.1\r\n{_head()}\r\n".encode()
    if kind == "similar":  # an item's similar list (the similar-items index when on)
        path = f"/v1/items/{items[(conn * 7919 + n) % len(items)]}/similar?k=10"
        return f"GET {path} HTTP/1.1\r\n{_head()}\r\n".encode()
    if kind in ("recs", "recs-rules"):
        user = users[(conn * 7919 + n) % len(users)]
        rules = "&" + RULES_QUERY if kind == "recs-rules" else ""
        path = f"/v1/users/{user}/recommendations?k=10{rules}"
        return f"GET {path} HTTP/1.1\r\n{_head()}\r\n".encode()
    if kind == "predict":
        user = users[(conn * 7919 + n) % len(users)]
        start = (n * 10) % max(len(items) - 10, 1)
        body = {"user_id": user, "item_ids": items[start : start + 10], "model": RATING_MODEL}
    elif kind == "interactions":
        body = {"user_id": f"bench-{conn}-{n}", "item_id": items[n % len(items)], "rating": 4}
    elif kind == "mix-write":
        user = f"mix-{conn}-{n // 20}"
        body = {
            "interactions": [
                {"user_id": user, "item_id": items[(n + j * 500) % len(items)], "rating": 4}
                for j in range(2)
            ]
        }
    elif kind == "mix-adhoc":
        start = (n * 10) % max(len(items) - 10, 1)
        body = {"history": [{"item_id": i} for i in items[start : start + 10]], "k": 10}
    else:
        raise ValueError(kind)
    payload = json.dumps(body).encode()
    path = {"predict": "/v1/predictions", "mix-adhoc": "/v1/recommendations"}.get(
        kind, "/v1/interactions"
    )
    head = (
        f"POST {path} HTTP/1.1\r\n{_head()}Content-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


async def _connection(
    port: int, kind: str, conn: int, stop_at: float, warm_until: float, out: dict[str, Any]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    users, items = out["users"], out["items"]
    n = 0
    try:
        while (now := time.perf_counter()) < stop_at:
            writer.write(request_bytes(kind, conn, n, users, items))
            n += 1
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            done = time.perf_counter()
            if now >= warm_until:
                out["latencies"].append(done - now)
                if not 200 <= status < 300:
                    out["errors"][status] = out["errors"].get(status, 0) + 1
    finally:
        writer.close()


async def _drive(port: int, kind: str, conc: int, duration: float, warmup: float) -> dict:
    users = [str(u) for u in range(1, 944)]  # ML-100K user and item ids (both models know them)
    items = [str(i) for i in range(1, 1001)]
    out: dict[str, Any] = {"latencies": [], "errors": {}, "users": users, "items": items}
    start = time.perf_counter()
    warm_until, stop_at = start + warmup, start + warmup + duration
    await asyncio.gather(
        *(_connection(port, kind, c, stop_at, warm_until, out) for c in range(conc))
    )
    elapsed = time.perf_counter() - warm_until
    lat = np.asarray(out["latencies"]) * 1000.0
    return {
        "endpoint": kind,
        "concurrency": conc,
        "requests": int(lat.size),
        "rps": lat.size / elapsed,
        "p50_ms": float(np.percentile(lat, 50)) if lat.size else float("nan"),
        "p95_ms": float(np.percentile(lat, 95)) if lat.size else float("nan"),
        "p99_ms": float(np.percentile(lat, 99)) if lat.size else float("nan"),
        "errors": out["errors"],
    }


def load_main(argv: list[str]) -> None:
    """Entry of the load-generator subprocess: one endpoint at one concurrency; JSON on stdout."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--kind", choices=[*ENDPOINTS, "recs-rules"], required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--warmup", type=float, required=True)
    a = parser.parse_args(argv)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(_drive(a.port, a.kind, a.concurrency, a.duration, a.warmup))
    print(json.dumps(result))


#: wrk's script of serve_bench's request kinds (``--load wrk``).
WRK_SCRIPT = Path(__file__).resolve().parent / "wrk" / "serve_bench.lua"


def run_load(
    port: int, kind: str, conc: int, duration: float, warmup: float, load: str = "python"
) -> dict:
    """One cell: ``load`` is ``python`` (this file's asyncio client, a subprocess) or
    ``wrk`` (the C load generator the issue measured with, driven by ``WRK_SCRIPT``)."""
    if load == "wrk":
        return run_wrk(port, kind, conc, duration, warmup)
    cmd = [sys.executable, __file__, "_load", "--port", str(port), "--kind", kind]
    cmd += ["--concurrency", str(conc), "--duration", str(duration), "--warmup", str(warmup)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"load generator ({kind} x{conc}) failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_wrk(port: int, kind: str, conc: int, duration: float, warmup: float) -> dict:
    """The cell measured by ``wrk`` (two threads at most: this is a 2-core machine's
    benchmark; one thread per connection below that). A run of ``warmup`` seconds first
    is thrown away, as the Python client's warm-up is; wrk counts whole seconds."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("--load wrk needs wrk on PATH (Debian: apt-get install wrk)")
    threads = str(min(2, conc))

    def once(seconds: float) -> dict:
        cmd = [wrk, "-t", threads, "-c", str(conc), "-d", f"{max(1, round(seconds))}s"]
        cmd += ["--timeout", "10s", "-s", str(WRK_SCRIPT), f"http://127.0.0.1:{port}", "--", kind]
        done = subprocess.run(cmd, capture_output=True, text=True)
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode or not lines:
            raise SystemExit(
                f"wrk ({kind} x{conc}) failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
            )
        return dict(json.loads(lines[-1]))

    if warmup > 0:
        once(warmup)
    out = once(duration)
    errors = {}
    if out["non2xx"]:
        errors["non-2xx"] = out["non2xx"]
    if out["socket_errors"]:
        errors["socket"] = out["socket_errors"]
    return {
        "endpoint": kind,
        "concurrency": conc,
        "requests": out["requests"],
        "rps": out["requests"] / out["seconds"],
        "p50_ms": out["p50_ms"],
        "p95_ms": out["p95_ms"],
        "p99_ms": out["p99_ms"],
        "errors": errors,
    }


# --------------------------------------------------------------------------- report


def batch_totals(port: int) -> tuple[float, float]:
    """(sum, count) of the ``genrec_batch_size`` histogram, from /metrics."""
    import httpx

    total = count = 0.0
    for line in httpx.get(f"http://127.0.0.1:{port}/metrics").text.splitlines():
        if line.startswith("genrec_batch_size_sum"):
            total += float(line.split()[-1])
        elif line.startswith("genrec_batch_size_count"):
            count += float(line.split()[-1])
    return total, count


def print_row(result: dict, ceiling: dict[int, float], batch: str = "") -> None:
    ratio = (
        result["rps"] / ceiling[result["concurrency"]] if result["concurrency"] in ceiling else 1
    )
    errors = ",".join(f"{k}x{v}" for k, v in result["errors"].items()) or "-"
    print(
        f"| {result['endpoint']:<12} | {result['concurrency']:>4} | {result['rps']:>8.0f} | "
        f"{result['p50_ms']:>7.2f} | {result['p95_ms']:>7.2f} | {result['p99_ms']:>7.2f} | "
        f"{ratio:>6.0%} | {batch:>5} | {errors} |",
        flush=True,
    )


def measure(
    port: int, kinds: list[str], levels: list[int], args: argparse.Namespace
) -> dict[tuple[str, int], tuple[dict, str]]:
    """Every (endpoint, concurrency) cell ``args.repeat`` times, endpoints interleaved, so
    that a slow minute of a shared machine hits the bare endpoint and the others alike;
    each cell reports the median of its runs (req/s and each latency percentile)."""
    runs: dict[tuple[str, int], list[dict]] = {}
    batch_sums: dict[tuple[str, int], list[float]] = {}
    for conc in levels:
        for round_ in range(args.repeat):
            for kind in kinds:
                before = batch_totals(port)
                result = run_load(port, kind, conc, args.duration, args.warmup, args.load)
                after = batch_totals(port)
                runs.setdefault((kind, conc), []).append(result)
                sums = batch_sums.setdefault((kind, conc), [0.0, 0.0])
                sums[0] += after[0] - before[0]
                sums[1] += after[1] - before[1]
                print(
                    f"# {kind} x{conc} run {round_ + 1}/{args.repeat}: {result['rps']:.0f} req/s",
                    file=sys.stderr,
                    flush=True,
                )
    cells = {}
    for key, results in runs.items():
        median = dict(results[0])
        for field in ("rps", "p50_ms", "p95_ms", "p99_ms"):
            median[field] = float(np.median([r[field] for r in results]))
        errors: dict[str, int] = {}
        for r in results:
            for status, count in r["errors"].items():
                errors[status] = errors.get(status, 0) + count
        median["errors"] = errors
        total, count = batch_sums[key]
        cells[key] = (median, f"{total / count:.1f}" if count else "")
    return cells


def impressions_ab(args: argparse.Namespace, store: Path, workdir: Path, levels: list[int]) -> None:
    """``recs`` on two servers, one with impressions on and one with them off, in one run.

    Both servers run side by side on one store and one database; runs alternate
    (off, on, on, off, ...) so that a slow minute of a shared machine hits both
    alike. Prints each cell's median req/s and latencies and the on/off ratio,
    and the impressions the "on" server wrote and dropped (from /metrics).
    """
    import httpx

    servers = {
        mode: start_server(args, store, workdir, (f"GENREC_IMPRESSIONS={mode}",))
        for mode in ("off", "on")
    }
    try:
        print(
            f"# impressions on vs off, recs; server settings: {' '.join(args.server_env) or 'defaults'}; "
            f"workers={args.workers}; cpus={os.cpu_count()}; median of {args.repeat} run(s)"
        )
        print("| impressions | conc |    req/s | p50 ms  | p95 ms  | p99 ms  | on/off | non-2xx |")
        print("|---|---|---|---|---|---|---|---|")
        for conc in levels:
            runs: dict[str, list[dict]] = {"off": [], "on": []}
            for round_ in range(args.repeat):
                order = ("off", "on") if round_ % 2 == 0 else ("on", "off")
                for mode in order:
                    result = run_load(
                        servers[mode][1], "recs", conc, args.duration, args.warmup, args.load
                    )
                    runs[mode].append(result)
                    print(
                        f"# impressions={mode} x{conc} run {round_ + 1}/{args.repeat}: "
                        f"{result['rps']:.0f} req/s",
                        file=sys.stderr,
                        flush=True,
                    )
            medians = {}
            for mode, results in runs.items():
                median = dict(results[0])
                for field in ("rps", "p50_ms", "p95_ms", "p99_ms"):
                    median[field] = float(np.median([r[field] for r in results]))
                median["errors"] = {}
                for r in results:
                    for status, count in r["errors"].items():
                        median["errors"][status] = median["errors"].get(status, 0) + count
                medians[mode] = median
            for mode in ("off", "on"):
                m = medians[mode]
                ratio = m["rps"] / medians["off"]["rps"]
                errors = ",".join(f"{k}x{v}" for k, v in m["errors"].items()) or "-"
                print(
                    f"| {mode:<11} | {conc:>4} | {m['rps']:>8.0f} | {m['p50_ms']:>7.2f} | "
                    f"{m['p95_ms']:>7.2f} | {m['p99_ms']:>7.2f} | {ratio:>6.0%} | {errors} |",
                    flush=True,
                )
        text = httpx.get(f"http://127.0.0.1:{servers['on'][1]}/metrics").text
        counted = [
            line
            for line in text.splitlines()
            if line.startswith(
                ("genrec_impressions_written_total", "genrec_impressions_dropped_total")
            )
        ]
        print("# impressions=on server: " + "; ".join(counted))
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait(timeout=60)


def import_catalog(database_url: str, data_dir: Path | None) -> None:
    """ML-100K's u.item into the server's catalog (genres, year), as ``genrec items import``."""
    from app.catalog.items import import_records
    from training.data.catalog_file import read_catalog_file

    root = data_dir or Path(__file__).resolve().parents[2] / "shared" / "data"
    path = root / "ml-100k" / "u.item"
    counts = import_records(database_url, read_catalog_file(path), str(path))
    print(f"# catalog from {path}: {counts}")


def _medians(results: list[dict]) -> dict:
    median = dict(results[0])
    for field in ("rps", "p50_ms", "p95_ms", "p99_ms"):
        median[field] = float(np.median([r[field] for r in results]))
    median["errors"] = {}
    for r in results:
        for status, count in r["errors"].items():
            median["errors"][status] = median["errors"].get(status, 0) + count
    return median


def rules_ab(args: argparse.Namespace, store: Path, workdir: Path, levels: list[int]) -> None:
    """``recs`` with the typical rules (``RULES_QUERY``) against without, on one server.

    The catalog (u.item) is imported first so the rules have attributes to test;
    runs alternate (off, on, on, off, ...) as in ``impressions_ab``. One request
    is checked first: the rules must have applied (with a boost, a boost unit in
    the answer), or the figure would compare two unfiltered runs.
    """
    import httpx

    data_dir = os.environ.get("GENREC_DATA_DIR")
    import_catalog(
        args.database_url or f"sqlite:///{workdir}/genrec.db", Path(data_dir) if data_dir else None
    )
    proc, port = start_server(args, store, workdir)
    try:
        probe = httpx.get(
            f"http://127.0.0.1:{port}/v1/users/1/recommendations?k=10&{RULES_QUERY}",
            headers=auth_headers(),
        )
        boosted = "boost=" in RULES_QUERY  # then the answer must show the boost's unit
        if probe.status_code != 200 or (boosted and "boost_unit" not in probe.json()):
            raise SystemExit(
                f"the server did not apply the rules: {probe.status_code} {probe.text[:300]}"
            )
        print(
            f"# rules on vs off, recs k=10; rules: {RULES_QUERY}; server settings: "
            f"{' '.join(args.server_env) or 'defaults'}; workers={args.workers}; "
            f"cpus={os.cpu_count()}; median of {args.repeat} run(s)"
        )
        print("| rules | conc |    req/s | p50 ms  | p95 ms  | p99 ms  | on/off | non-2xx |")
        print("|---|---|---|---|---|---|---|---|")
        kinds = {"off": "recs", "on": "recs-rules"}
        for conc in levels:
            runs: dict[str, list[dict]] = {"off": [], "on": []}
            for round_ in range(args.repeat):
                order = ("off", "on") if round_ % 2 == 0 else ("on", "off")
                for mode in order:
                    result = run_load(
                        port, kinds[mode], conc, args.duration, args.warmup, args.load
                    )
                    runs[mode].append(result)
                    print(
                        f"# rules={mode} x{conc} run {round_ + 1}/{args.repeat}: "
                        f"{result['rps']:.0f} req/s",
                        file=sys.stderr,
                        flush=True,
                    )
            medians = {mode: _medians(results) for mode, results in runs.items()}
            for mode in ("off", "on"):
                m = medians[mode]
                ratio = m["rps"] / medians["off"]["rps"]
                errors = ",".join(f"{k}x{v}" for k, v in m["errors"].items()) or "-"
                print(
                    f"| {mode:<5} | {conc:>4} | {m['rps']:>8.0f} | {m['p50_ms']:>7.2f} | "
                    f"{m['p95_ms']:>7.2f} | {m['p99_ms']:>7.2f} | {ratio:>6.0%} | {errors} |",
                    flush=True,
                )
        # How an indexed model answered (both modes together): from the index, or exactly.
        for line in httpx.get(f"http://127.0.0.1:{port}/metrics").text.splitlines():
            if line.startswith(("genrec_ann_rows_total", "genrec_ann_fallback_total")):
                print(f"# {line}")
    finally:
        proc.terminate()
        proc.wait(timeout=60)


# --------------------------------------------------------------------------- ANN recall


def ann_enabled(server_env: list[str]) -> bool:
    """Whether the run's own server setting may use approximate retrieval (``on``, or
    ``auto``, which may leave the index closed: the recall line then shows it)."""
    return "GENREC_ANN=on" in server_env or "GENREC_ANN=auto" in server_env


async def _lists(port: int, requests: list[tuple[str, str, Any]]) -> list[list[str]]:
    """Item ids answered to each (method, path, body), 32 requests in flight."""
    import httpx

    gate = asyncio.Semaphore(32)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", timeout=600, headers=auth_headers()
    ) as client:

        async def one(method: str, path: str, body: Any) -> list[str]:
            async with gate:
                response = await client.request(method, path, json=body)
            response.raise_for_status()
            return [item["item_id"] for item in response.json()["items"]]

        return await asyncio.gather(*(one(m, p, b) for m, p, b in requests))


def recall_requests(n_users: int, seed: int = 0) -> list[tuple[str, str, Any]]:
    """Top-100 requests: every ML-100K user (seen items masked), then ad-hoc histories of
    10 random ML-100K items for the rest, so that ``n_users`` lists are compared."""
    known = [("GET", f"/v1/users/{u}/recommendations?k=100", None) for u in range(1, 944)]
    rng = np.random.default_rng(seed)
    ad_hoc = [
        (
            "POST",
            "/v1/recommendations",
            {
                "history": [{"item_id": str(i)} for i in rng.choice(np.arange(1, 1683), 10, False)],
                "k": 100,
            },
        )
        for _ in range(max(n_users - len(known), 0))
    ]
    return (known + ad_hoc)[: max(n_users, 1)]


def ann_recall(
    args: argparse.Namespace,
    store: Path,
    workdir: Path,
    port: int,
    recs: bool = True,
    similar: bool = False,
) -> None:
    """Recall@100 of this (ANN) server's lists against an exact server's on the same store:
    users' lists (``recs``) and items' similar lists (``similar``: ``--recall-users`` items
    of the ML-100K id range, each item's own similar-items list)."""
    import httpx

    wanted: dict[str, list[tuple[str, str, Any]]] = {}
    if recs:
        wanted["ann_recall@100"] = recall_requests(args.recall_users)
    if similar:
        ids = range(1, min(args.recall_users, 1682) + 1)
        wanted["similar_recall@100"] = [("GET", f"/v1/items/{i}/similar?k=100", None) for i in ids]
    requests = [r for rs in wanted.values() for r in rs]
    t0 = time.perf_counter()
    approximate = asyncio.run(_lists(port, requests))
    reference, ref_port = start_server(args, store, workdir, ("GENREC_ANN=off",))
    try:
        exact = asyncio.run(_lists(ref_port, requests))
    finally:
        reference.terminate()
        reference.wait(timeout=60)
    hits = [len(set(a) & set(e)) / max(len(e), 1) for a, e in zip(approximate, exact, strict=True)]
    print(f"# recall lists fetched in {time.perf_counter() - t0:.0f} s (exact server included)")
    counted = [
        line
        for line in httpx.get(f"http://127.0.0.1:{port}/metrics").text.splitlines()
        if line.startswith(("genrec_ann_rows_total", "genrec_ann_fallback_total"))
    ]
    print("# ann server: " + ("; ".join(counted) or "no genrec_ann samples (index not used?)"))
    start = 0
    for label, asked in wanted.items():
        part = hits[start : start + len(asked)]
        start += len(asked)
        noun = "users" if label.startswith("ann") else "items"
        print(f"{label}={np.mean(part):.4f} {noun}={len(part)}", flush=True)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_load":
        load_main(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--store", type=Path, help="existing store (default: train into a temp one)"
    )
    parser.add_argument("--items", type=int, help="synthetic catalog size for mult-vae")
    parser.add_argument(
        "--base-store",
        type=Path,
        help="with --items: widen a copy of this store instead of training one",
    )
    parser.add_argument(
        "--dims", type=int, help="mult-vae hidden width, i.e. item-table width (default 600)"
    )
    parser.add_argument(
        "--catalog",
        choices=("iid", "correlated"),
        default="iid",
        help="how synthetic item rows are drawn (see widen_catalog)",
    )
    parser.add_argument(
        "--recall-users",
        type=int,
        default=1043,
        help="with GENREC_ANN=on: lists compared with an exact server (943 known + ad-hoc)",
    )
    parser.add_argument("--concurrency", default="1,8,32,128")
    parser.add_argument("--endpoints", default=",".join(DEFAULT_ENDPOINTS))
    parser.add_argument("--duration", type=float, default=5.0, help="seconds measured per cell")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds not measured per cell")
    parser.add_argument(
        "--load",
        choices=("python", "wrk"),
        default="python",
        help="load generator: this file's asyncio client, or wrk (benchmarks/wrk/serve_bench.lua)",
    )
    parser.add_argument("--database-url", help="default: a SQLite file in the temp dir")
    parser.add_argument("--redis-url", help="default: the in-process cache")
    parser.add_argument("--workers", type=int, default=1, help="genrec serve --workers")
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs per cell, interleaved; medians are reported"
    )
    parser.add_argument("--server-env", action="append", default=[], help="KEY=VALUE for serve")
    parser.add_argument("--server-log-dir", type=Path, help="keep the server logs here")
    parser.add_argument(
        "--impressions-ab",
        action="store_true",
        help="only recs, on a server with impressions on and one with them off, alternating",
    )
    parser.add_argument(
        "--rules-ab",
        action="store_true",
        help="only recs, with a typical filter and boost and without, alternating (one server)",
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("BENCH_API_KEY"),
        help="benchmark a keyed server: start it with GENREC_API_KEYS=KEY and send the key "
        "with every request (default: BENCH_API_KEY; unset = an open server)",
    )
    parser.add_argument(
        "--rules-query",
        help="with --rules-ab: these rules instead of the typical ones, as an encoded query "
        "string (e.g. 'boost=year%%3E%%3D1995%%5E0.5': a boost alone, which a widened catalog's "
        "synthetic items, having no attributes, do not all fail)",
    )
    args = parser.parse_args()
    if args.api_key:
        global API_KEY
        API_KEY = os.environ["BENCH_API_KEY"] = args.api_key
    if args.rules_query:
        global RULES_QUERY
        RULES_QUERY = os.environ["BENCH_RULES"] = args.rules_query
    endpoints = [e for e in args.endpoints.split(",") if e]
    unknown = set(endpoints) - set(ENDPOINTS)
    if unknown:
        raise SystemExit(f"unknown endpoints {sorted(unknown)}; known: {', '.join(ENDPOINTS)}")
    levels = [int(c) for c in args.concurrency.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="genrec-bench-"))
    store = args.store or workdir / "store"
    if not store.exists():  # build it (kept afterwards when --store named it)
        data_dir = os.environ.get("GENREC_DATA_DIR")
        build_store(
            store,
            Path(data_dir) if data_dir else None,
            args.items,
            args.dims,
            args.catalog,
            base=args.base_store,
            index="GENREC_ANN=off" not in args.server_env,
        )
    elif args.items is not None:
        raise SystemExit("--items builds a new store; pass a --store path that does not exist")
    if args.rules_ab:
        try:
            rules_ab(args, store, workdir, levels)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        return
    if args.impressions_ab:
        try:
            impressions_ab(args, store, workdir, levels)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        return
    proc, port = start_server(args, store, workdir)
    try:
        print(
            f"# server settings: {' '.join(args.server_env) or 'defaults'}; "
            f"api key: {'sent (GENREC_API_KEYS set)' if API_KEY else 'none'}; "
            f"workers={args.workers}; cpus={os.cpu_count()}; median of {args.repeat} run(s)"
        )
        print(
            "| endpoint     | conc |    req/s | p50 ms  | p95 ms  | p99 ms  | vs bare | batch | non-2xx |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        kinds = ["constant", *[e for e in endpoints if e != "constant"]]
        cells = measure(port, kinds, levels, args)
        ceiling = {conc: cells[("constant", conc)][0]["rps"] for conc in levels}
        for kind in kinds:
            for conc in levels:
                result, mean_batch = cells[(kind, conc)]
                print_row(result, ceiling, mean_batch)
        if ann_enabled(args.server_env) and ("recs" in kinds or "similar" in kinds):
            ann_recall(args, store, workdir, port, "recs" in kinds, "similar" in kinds)
        if "mix" in kinds and "recs" in kinds:  # the mixed cell against pure known-user recs
            for conc in levels:
                mix, recs = cells[("mix", conc)][0]["rps"], cells[("recs", conc)][0]["rps"]
                print(
                    f"mix_vs_recs@{conc}={mix / recs:.2f} (mix {mix:.0f} / recs {recs:.0f} req/s)"
                )
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        keep_server_logs(workdir, args.server_log_dir)
        shutil.rmtree(workdir, ignore_errors=True)


def keep_server_logs(workdir: Path, into: Path | None) -> None:
    """Copy the servers' logs out of the temporary folder before it goes (``--server-log-dir``)."""
    if into is None:
        return
    into.mkdir(parents=True, exist_ok=True)
    for log in workdir.glob("server-*.log"):
        shutil.copy(log, into / log.name)


if __name__ == "__main__":
    main()
