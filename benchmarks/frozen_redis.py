"""Interaction-write latency while Redis is frozen (SIGSTOP): what a hung cache costs.

What it does:

1. Creates a scratch Postgres database (dropped at the end) and starts a
   private ``redis-server`` on a free port (the shared one is never touched).
2. Starts ``genrec serve`` on them (an empty model store: writes need no model).
3. Runs ``--clients`` closed-loop posters (``POST /v1/interactions``, one new
   event each) through three windows: Redis healthy, Redis frozen with
   SIGSTOP for ``--frozen-s`` seconds, Redis thawed. Prints, per window, the
   number of writes, their statuses and the p50/p90/max latency.

A frozen Redis accepts TCP connections (the kernel does) but never answers,
so without a circuit breaker every write waits the cache's socket timeout
(0.25 s) in its invalidation. The server's code is whatever ``genrec`` imports,
so the same script measures another checkout with ``PYTHONPATH=/path/to/it``.

Usage::

    python benchmarks/frozen_redis.py
    python benchmarks/frozen_redis.py --clients 4 --frozen-s 10
    PYTHONPATH=/path/to/old/checkout python benchmarks/frozen_redis.py   # before the fix
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

POSTGRES_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def scratch_database(admin_url: str) -> Iterator[str]:
    """A fresh Postgres database for this run; dropped afterwards."""
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"genrec_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@contextmanager
def private_redis() -> Iterator[subprocess.Popen[bytes]]:
    """A redis-server of this run on a free port (``proc.args`` holds the port)."""
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server not found on PATH")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=port).ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)
        proc.port = port  # type: ignore[attr-defined]
        yield proc
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        proc.kill()
        proc.wait(timeout=10)


@contextmanager
def genrec_server(database_url: str, redis_url: str, workdir: Path) -> Iterator[str]:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GENREC_")},
        "GENREC_DATABASE_URL": database_url,
        "GENREC_REDIS_URL": redis_url,
        "GENREC_STORE_DIR": str(workdir / "store"),
        "GENREC_ACCESS_LOG": "false",
        "GENREC_LOG_LEVEL": "WARNING",
        "OMP_NUM_THREADS": "1",
    }
    log = (workdir / "server.log").open("wb")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "genrec"), "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=workdir,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                sys.exit(f"genrec serve exited:\n{(workdir / 'server.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                sys.exit("genrec serve did not come up in 60 s")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


async def poster(
    client: httpx.AsyncClient, n: int, stop_at: float, samples: list[tuple[float, float, int]]
) -> None:
    """Closed loop: (sent at, latency s, status) per write."""
    i = 0
    while (sent := time.monotonic()) < stop_at:
        r = await client.post(
            "/v1/interactions", json={"user_id": f"bench-{n}-{i}", "item_id": str(i % 50)}
        )
        samples.append((sent, time.monotonic() - sent, r.status_code))
        i += 1


async def run(base: str, redis_pid: int, args: argparse.Namespace) -> None:
    samples: list[tuple[float, float, int]] = []
    windows = [("healthy", args.healthy_s), ("frozen", args.frozen_s), ("thawed", args.thawed_s)]
    limits = httpx.Limits(max_connections=args.clients)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
        t0 = time.monotonic()
        total = sum(seconds for _, seconds in windows)
        posters = [
            asyncio.create_task(poster(client, n, t0 + total, samples)) for n in range(args.clients)
        ]
        await asyncio.sleep(args.healthy_s)
        os.kill(redis_pid, signal.SIGSTOP)
        await asyncio.sleep(args.frozen_s)
        os.kill(redis_pid, signal.SIGCONT)
        await asyncio.gather(*posters)
    start = t0
    print(f"{args.clients} client(s); cache socket timeout 0.25 s; Redis frozen with SIGSTOP")
    print(
        f"{'window':<8} {'seconds':>7} {'writes':>7} {'statuses':<14} "
        f"{'p50 ms':>7} {'p90 ms':>7} {'max ms':>7}"
    )
    for name, seconds in windows:
        rows = [(lat, st) for sent, lat, st in samples if start <= sent < start + seconds]
        start += seconds
        if not rows:
            print(f"{name:<8} {seconds:>7.1f} {0:>7}")
            continue
        lat_ms = sorted(lat * 1000 for lat, _ in rows)
        statuses = ",".join(
            f"{s}x{sum(1 for _, x in rows if x == s)}" for s in sorted({s for _, s in rows})
        )
        p90 = lat_ms[min(len(lat_ms) - 1, int(0.9 * len(lat_ms)))]
        print(
            f"{name:<8} {seconds:>7.1f} {len(rows):>7} {statuses:<14} "
            f"{statistics.median(lat_ms):>7.1f} {p90:>7.1f} {lat_ms[-1]:>7.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres-admin-url", default=POSTGRES_ADMIN_URL)
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--healthy-s", type=float, default=5.0)
    parser.add_argument("--frozen-s", type=float, default=10.0)
    parser.add_argument("--thawed-s", type=float, default=5.0)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="frozen-redis-") as tmp,
        scratch_database(args.postgres_admin_url) as database_url,
        private_redis() as redis_proc,
    ):
        redis_url = f"redis://127.0.0.1:{redis_proc.port}/0"  # type: ignore[attr-defined]
        with genrec_server(database_url, redis_url, Path(tmp)) as base:
            asyncio.run(run(base, redis_proc.pid, args))


if __name__ == "__main__":
    main()
