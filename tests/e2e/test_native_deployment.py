"""docker-compose's topology, run natively: the processes the containers run.

``genrec migrate`` (the ``migrate`` service), ``genrec train ... --promote
--if-missing`` (``init-model``, twice: the second run must be a no-op, as on
every ``docker compose up``), two ``genrec serve`` processes on their own
ports (``api`` scaled to 2) and one ``genrec worker`` — all against the real
Postgres and Redis, with the environment compose gives them (the store a
shared directory, ``GENREC_AUTO_MIGRATE=false``). It shows what scaling out
relies on: replicas share nothing but Postgres, Redis and the store, so an
interaction logged through one api changes what the other serves, and a
version the worker trains and promotes reaches both without a restart.
"""

from __future__ import annotations

import contextlib
import csv
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import age_log, scratch_database

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

TOKEN = "e2e-deploy-token"
MODEL = "ease"
SLICE_USERS = 150  # ML-100K users 1..150: ~20k ratings, EASE trains in well under a second
READY_TIMEOUT_S = 90.0
JOB_TIMEOUT_S = 90.0
NEW_USER = "deploy-e2e-new-user"


# --------------------------------------------------------------------------- processes


def genrec_command() -> list[str]:
    """The ``genrec`` console script of this interpreter's environment (else ``-m``)."""
    script = Path(sys.executable).with_name("genrec")
    return [str(script)] if script.exists() else [sys.executable, "-m", "app.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Proc:
    """A long-running genrec process in its own session, its output in a log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    url: str | None = None

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"--- {self.name} log (last {lines} lines) ---\n" + "\n".join(
            text.splitlines()[-lines:]
        )

    def signal_group(self, sig: signal.Signals) -> None:
        """Signal the process group (uvicorn and its children), if still running."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):  # exited since poll()
                os.killpg(self.popen.pid, sig)

    def stop(self) -> None:
        """Wait for a SIGTERMed process to exit; SIGKILL its group after 10 s."""
        self.signal_group(signal.SIGTERM)
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.signal_group(signal.SIGKILL)
            self.popen.wait(timeout=10)


def run_once(args: list[str], env: dict[str, str], cwd: Path) -> str:
    """Run a one-shot genrec command (the compose one-shot services); its output."""
    done = subprocess.run(
        genrec_command() + args, env=env, cwd=cwd, capture_output=True, text=True, timeout=180
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"genrec {' '.join(args)} failed:\n{output}"
    return output


@pytest.fixture
def processes() -> Iterator[Callable[..., Proc]]:
    """Start genrec processes; every one is stopped at teardown, whatever happened."""
    started: list[Proc] = []

    def start(name: str, args: list[str], env: dict[str, str], cwd: Path, port: int = 0) -> Proc:
        log = cwd / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                genrec_command() + args,
                env=env,
                cwd=cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() reaches uvicorn's children
            )
        proc = Proc(name, popen, log, f"http://127.0.0.1:{port}" if port else None)
        started.append(proc)
        return proc

    try:
        yield start
    finally:
        for proc in started:  # all shut down at once, then each is waited for
            proc.signal_group(signal.SIGTERM)
        for proc in started:
            proc.stop()


def wait_until(
    what: str, check: Callable[[], Any], timeout: float, procs: list[Proc], interval: float = 0.25
) -> Any:
    """Poll ``check`` until it returns something truthy; fail with the logs on timeout/exit."""
    deadline = time.monotonic() + timeout
    while True:
        for proc in procs:
            if proc.popen.poll() is not None:
                pytest.fail(
                    f"{proc.name} exited ({proc.popen.returncode}) while waiting for {what}\n{proc.tail()}"
                )
        try:
            result = check()
        except httpx.TransportError:
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            logs = "\n".join(p.tail() for p in procs)
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{logs}")
        time.sleep(interval)


@pytest.fixture
def own_database(postgres_url: str) -> Iterator[str]:
    """A database of this test's own on the session's Postgres, dropped afterwards.

    The session database is shared with other tests, whose leftover retrain
    jobs this test's worker would otherwise claim (the worker takes the
    oldest claimable job, whoever queued it).
    """
    with scratch_database(postgres_url, "genrec_deploy") as url:
        yield url


# --------------------------------------------------------------------------- data + env


def write_slice(data_dir: Path, path: Path, n_users: int) -> int:
    """ML-100K ratings of users 1..n_users as a genrec CSV; returns the row count."""
    rows = 0
    with (data_dir / "ml-100k" / "u.data").open() as src, path.open("w", newline="") as dst:
        writer = csv.writer(dst)
        writer.writerow(["user_id", "item_id", "rating", "timestamp"])
        for line in src:
            user, item, rating, ts = line.split("\t")
            if int(user) <= n_users:
                writer.writerow([user, item, rating, ts.strip()])
                rows += 1
    return rows


def service_env(database_url: str, redis_url: str, namespace: str, store: Path) -> dict[str, str]:
    """What docker-compose.yml gives every genrec container, pointed at this test's services."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENREC_")}
    env.update(
        GENREC_DATABASE_URL=database_url,
        GENREC_REDIS_URL=redis_url,
        GENREC_CACHE_NAMESPACE=namespace,
        GENREC_STORE_DIR=str(store),
        GENREC_DEFAULT_MODEL=MODEL,
        GENREC_DEVICE="cpu",
        GENREC_ADMIN_TOKEN=TOKEN,
        GENREC_AUTO_MIGRATE="false",  # the migrate step did it, as in compose
        GENREC_RELOAD_INTERVAL_S="0.5",
        GENREC_JOB_POLL_INTERVAL_S="0.5",
        GENREC_JOB_LEASE_S="30",
        GENREC_LOG_LEVEL="INFO",
        OMP_NUM_THREADS="1",
    )
    return env


def recommend(api: Proc, user: str, k: int = 10) -> dict[str, Any]:
    response = httpx.get(f"{api.url}/v1/users/{user}/recommendations", params={"k": k}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def item_ids(body: dict[str, Any]) -> list[str]:
    return [entry["item_id"] for entry in body["items"]]


def post_interactions(api: Proc, user: str, items: list[str]) -> None:
    events = [{"user_id": user, "item_id": item, "rating": 5} for item in items]
    response = httpx.post(f"{api.url}/v1/interactions", json={"interactions": events}, timeout=30)
    assert response.status_code == 201, response.text
    assert response.json()["accepted"] == len(items)


def admin(method: str, api: Proc, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    return httpx.request(method, f"{api.url}{path}", headers=headers, timeout=30, **kwargs)


# --------------------------------------------------------------------------- the test


def test_two_apis_and_a_worker_share_postgres_redis_and_the_store(
    tmp_path: Path,
    data_dir: Path,
    own_database: str,
    redis_url: str,
    redis_namespace: str,
    processes: Callable[..., Proc],
) -> None:
    import redis

    from app.core.cache import RedisCache
    from app.core.metrics import Metrics

    data = tmp_path / "ml-100k-slice.csv"
    assert write_slice(data_dir, data, SLICE_USERS) > 10_000
    env = service_env(own_database, redis_url, redis_namespace, tmp_path / "store")

    # One-shot services: migrate, then init-model (idempotent on the second run).
    run_once(["migrate"], env, tmp_path)
    init = ["train", "--model", MODEL, "--data", str(data), "--promote", "--if-missing"]
    assert f"saved {MODEL} version 1 (production)" in run_once(init, env, tmp_path)

    port_a, port_b = free_port(), free_port()
    api_a = processes("api-a", ["serve", "--port", str(port_a)], env, tmp_path, port_a)
    api_b = processes("api-b", ["serve", "--port", str(port_b)], env, tmp_path, port_b)
    worker = processes("worker", ["worker"], env, tmp_path)
    everyone = [api_a, api_b, worker]
    # While they start: init-model again (every `docker compose up` runs it) is a no-op.
    assert "already has production version 1" in run_once(init, env, tmp_path)
    for api in (api_a, api_b):
        wait_until(
            f"{api.name} /readyz",
            lambda api=api: httpx.get(f"{api.url}/readyz", timeout=5).status_code == 200,
            READY_TIMEOUT_S,
            everyone,
        )

    # --- an interaction through api-a changes what api-b serves -------------
    keys = RedisCache(redis_url, Metrics(), namespace=redis_namespace)  # for its key format
    cache_key = keys.key
    client = redis.Redis.from_url(redis_url)
    stamp_field = f"{MODEL}:1:stamp"
    try:
        known = "1"
        before = recommend(api_b, known)
        assert before["version"] == "1" and not before["fallback"]
        stamp = wait_until(  # written behind, a moment after the answer
            "api-b caches the user's state in Redis",
            lambda: client.hget(cache_key(known), stamp_field),
            10.0,
            everyone,
            interval=0.02,
        )
        watched = item_ids(before)[:3]
        post_interactions(api_a, known, watched)
        # A write leaves the cache alone: the entry's stamp is now behind the log.
        assert client.hget(cache_key(known), stamp_field) == stamp
        after = recommend(api_b, known)
        wait_until(
            "api-b refolds and restamps the shared entry",
            lambda: int(client.hget(cache_key(known), stamp_field) or 0) > int(stamp),
            10.0,
            everyone,
            interval=0.02,
        )
    finally:
        client.close()
        keys.close()
    assert not set(watched) & set(item_ids(after)), "api-b still recommends what was just seen"
    assert item_ids(after) != item_ids(before)

    cold = recommend(api_b, NEW_USER)
    assert cold["fallback"], "a user with no history gets the popularity fallback"
    liked = item_ids(before)[3:6]
    post_interactions(api_a, NEW_USER, liked)
    warm = recommend(api_b, NEW_USER)
    assert not warm["fallback"], "api-b folds the new user in from what api-a logged"
    assert not set(liked) & set(item_ids(warm))

    # --- a retrain the worker runs and promotes reaches both apis ------------
    age_log(own_database)  # logged before the job's commit margin: its training data
    unauthorised = httpx.post(f"{api_a.url}/admin/retrain", json={"model": MODEL}, timeout=30)
    assert unauthorised.status_code == 401
    accepted = admin(
        "POST",
        api_a,
        "/admin/retrain",
        json={"model": MODEL, "data": "log+base", "promote": "always"},
    )
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["job_id"]

    def job_finished() -> dict[str, Any] | None:
        job = admin("GET", api_b, f"/admin/jobs/{job_id}").json()  # the other replica
        return job if job["status"] in ("succeeded", "failed", "cancelled") else None

    job = wait_until(f"retrain job {job_id}", job_finished, JOB_TIMEOUT_S, everyone, 0.5)
    assert job["status"] == "succeeded", job
    assert job["promoted"] is True and job["result_version"] == "2", job

    for api in (api_a, api_b):
        wait_until(
            f"{api.name} serving version 2",
            lambda api=api: recommend(api, NEW_USER)["version"] == "2",
            30.0,
            everyone,
        )
    models = admin("GET", api_b, "/admin/models").json()["models"]
    production = {m["name"]: m["aliases"]["production"] for m in models}
    assert production == {MODEL: "2"}
    newest = models[0]["versions"][0]
    assert newest["version"] == "2" and newest["data"]["n_interactions"] > 10_000
    # The new user's logged interactions are training data of version 2 now.
    assert not recommend(api_a, NEW_USER)["fallback"]
