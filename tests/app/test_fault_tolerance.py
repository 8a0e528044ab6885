"""Faults under load: Redis stopped and restarted, Postgres cut for ~5 s, against a real server.

A ``genrec serve`` subprocess takes ~20 s of concurrent interaction posts (and
some reads) on loopback while

* its dedicated redis-server (a private one on a free port, never the shared
  one) is killed and, a few seconds later, started again on the same port;
* its path to Postgres goes through a TCP proxy in this test that is cut —
  live connections aborted, new ones dropped — for ~5 s and then restored.
  (The shared Postgres cluster is never stopped: other tests use it.)

Afterwards every interaction that got a 2xx is in the database, every other
one got a 503, no request got a 500, reads kept answering (flagged
``degraded`` while the database was away), and writes succeeded again after
the outages without a restart.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.core.db import upgrade_database
from tests.conftest import require_tool

pytestmark = pytest.mark.integration

LOAD_S = 20.0  # total load; the schedule below happens inside it
REDIS_DOWN_AT, REDIS_UP_AT = 3.0, 7.0
PG_CUT_AT, PG_RESTORE_AT = 9.0, 14.0
POSTERS, READERS = 12, 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- TCP proxy


class TcpProxy:
    """Forwards a local port to ``target``; ``cut()`` aborts every connection and drops new
    ones until ``restore()`` — what a database outage looks like to its clients."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._cut = False
        self._transports: set[asyncio.Transport] = set()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="pg-proxy", daemon=True)

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("proxy did not start")

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def cut(self) -> None:
        asyncio.run_coroutine_threadsafe(self._set_cut(True), self._loop).result(5)

    def restore(self) -> None:
        asyncio.run_coroutine_threadsafe(self._set_cut(False), self._loop).result(5)

    async def _set_cut(self, cut: bool) -> None:
        self._cut = cut
        if cut:
            for transport in list(self._transports):
                transport.abort()  # RST, not a polite close: like a dead server
            self._transports.clear()

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = int(server.sockets[0].getsockname()[1])
        self._ready.set()
        self._loop.run_forever()
        server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._cut:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        pair = {writer.transport, up_writer.transport}
        self._transports |= pair  # type: ignore[arg-type]
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        self._transports -= pair  # type: ignore[arg-type]


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.transport.abort()


# --------------------------------------------------------------------------- redis


class OwnRedis:
    """A private redis-server on a fixed free port that can be killed and started again."""

    def __init__(self) -> None:
        self.binary = require_tool("redis-server", "the fault test runs its own Redis")
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.proc = subprocess.Popen(
            [self.binary, *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(self.url).ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise RuntimeError("private redis-server did not start") from None
                time.sleep(0.05)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


# --------------------------------------------------------------------------- fixtures


@dataclass
class Server:
    base_url: str
    redis: OwnRedis
    proxy: TcpProxy
    database_url: str  # direct, not through the proxy
    log: Path


@pytest.fixture
def server(postgres_url: str, trained_store_dir: Path, tmp_path: Path) -> Iterator[Server]:
    own_redis = OwnRedis()  # first: without redis-server nothing is left running
    upgrade_database(postgres_url)
    target = make_url(postgres_url)
    proxy = TcpProxy(int(target.port or 5432))
    proxy.start()
    own_redis.start()
    store = tmp_path / "store"
    shutil.copytree(trained_store_dir, store)
    port = _free_port()
    proxied = target.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GENREC_")},
        "GENREC_DATABASE_URL": proxied,
        "GENREC_REDIS_URL": own_redis.url,
        "GENREC_STORE_DIR": str(store),
        "GENREC_AUTO_MIGRATE": "false",
        "GENREC_ACCESS_LOG": "false",
        "GENREC_DB_RETRY_S": "0.5",
        "OMP_NUM_THREADS": "1",
    }
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "genrec"), "serve", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base_url, proc, log)
        yield Server(base_url, own_redis, proxy, postgres_url, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        own_redis.kill()
        proxy.stop()


def _wait_ready(base_url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"genrec serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail(f"genrec serve not ready in 60 s:\n{log.read_text()[-3000:]}")


# --------------------------------------------------------------------------- load


@dataclass
class Outcomes:
    posts: dict[str, int] = field(default_factory=dict)  # user id -> status (one item each)
    # user id -> (sent, answered), seconds into the run
    post_times: dict[str, tuple[float, float]] = field(default_factory=dict)
    reads: list[tuple[int, bool]] = field(default_factory=list)  # (status, degraded)
    errors: list[str] = field(default_factory=list)  # transport failures (none expected)


async def _poster(client: httpx.AsyncClient, n: int, out: Outcomes, t0: float) -> None:
    i = 0
    while (now := time.monotonic() - t0) < LOAD_S:
        user = f"ft-{n}-{i}"
        i += 1
        try:
            r = await client.post("/v1/interactions", json={"user_id": user, "item_id": "1"})
            out.posts[user] = r.status_code
            out.post_times[user] = (now, time.monotonic() - t0)
        except httpx.HTTPError as exc:
            out.errors.append(f"POST {user}: {exc!r}")


async def _reader(client: httpx.AsyncClient, out: Outcomes, t0: float) -> None:
    while time.monotonic() - t0 < LOAD_S:
        try:
            r = await client.get("/v1/users/u3/recommendations", params={"k": 5})
            out.reads.append((r.status_code, bool(r.json().get("degraded"))))
        except httpx.HTTPError as exc:
            out.errors.append(f"GET: {exc!r}")
        await asyncio.sleep(0.05)


async def _chaos(server: Server, t0: float) -> None:
    schedule = [
        (REDIS_DOWN_AT, server.redis.kill),
        (REDIS_UP_AT, server.redis.start),
        (PG_CUT_AT, server.proxy.cut),
        (PG_RESTORE_AT, server.proxy.restore),
    ]
    for at, action in schedule:
        await asyncio.sleep(max(0.0, t0 + at - time.monotonic()))
        await asyncio.to_thread(action)


async def _run_load(server: Server) -> Outcomes:
    out = Outcomes()
    limits = httpx.Limits(max_connections=POSTERS + READERS)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=15, limits=limits) as client:
        t0 = time.monotonic()
        await asyncio.gather(
            _chaos(server, t0),
            *(_poster(client, n, out, t0) for n in range(POSTERS)),
            *(_reader(client, out, t0) for _ in range(READERS)),
        )
    return out


def _stored_users(database_url: str) -> set[str]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT user_id FROM interactions WHERE user_id LIKE 'ft-%'"))
            return {r.user_id for r in rows}
    finally:
        engine.dispose()


def test_acknowledged_writes_survive_redis_and_postgres_outages(server: Server) -> None:
    out = asyncio.run(_run_load(server))
    log_tail = server.log.read_text()[-3000:]
    assert not out.errors, (out.errors[:5], log_tail)

    statuses = set(out.posts.values())
    assert statuses <= {201, 503}, (statuses, log_tail)  # never a 500, never anything else
    stored = _stored_users(server.database_url)
    acknowledged = {user for user, status in out.posts.items() if status == 201}
    missing = acknowledged - stored
    assert not missing, f"{len(missing)} acknowledged interactions are not in the database"

    # The outage really happened (every 503 was answered during or just after the cut) ...
    refused = [out.post_times[u] for u, s in out.posts.items() if s == 503]
    assert refused, "no write was refused: the Postgres cut did not take effect"
    assert all(answered >= PG_CUT_AT and sent <= PG_RESTORE_AT + 5 for sent, answered in refused)
    # ... and the service came back on its own.
    ok = [out.post_times[u] for u, s in out.posts.items() if s == 201]
    assert any(sent > PG_RESTORE_AT for sent, _ in ok), "no write succeeded after Postgres is back"
    assert sum(1 for _, answered in ok if answered < PG_CUT_AT) > 10

    # Reads never failed; some were answered without the database.
    assert {status for status, _ in out.reads} == {200}, log_tail
    assert any(degraded for _, degraded in out.reads)
    assert not out.reads[-1][1]  # healthy again at the end
