"""Two server processes (``genrec serve``) on one Postgres and Redis: a user gets the
same variant from both, and stopping the experiment on one returns the other's traffic
to the default model within its refresh interval."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine

from app.core.db import upgrade_database

TOKEN = "replicas-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
REFRESH_S = 0.2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(
    env: dict[str, str], tmp_path: Path, n: int
) -> tuple[subprocess.Popen[bytes], str, Path]:
    port = _free_port()
    log = tmp_path / f"server-{n}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "genrec"), "serve", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    return proc, f"http://127.0.0.1:{port}", log


def _wait_ready(base_url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"genrec serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail(f"genrec serve not ready in 90 s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def two_servers(
    postgres_url: str, redis_url: str, redis_namespace: str, trained_store_dir: Path, tmp_path: Path
) -> Iterator[list[str]]:
    upgrade_database(postgres_url)
    engine = create_engine(postgres_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM experiments")
    engine.dispose()
    store = tmp_path / "store"
    shutil.copytree(trained_store_dir, store)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GENREC_")},
        "GENREC_DATABASE_URL": postgres_url,
        "GENREC_REDIS_URL": redis_url,
        "GENREC_CACHE_NAMESPACE": redis_namespace,
        "GENREC_STORE_DIR": str(store),
        "GENREC_ADMIN_TOKEN": TOKEN,
        "GENREC_AUTO_MIGRATE": "false",
        "GENREC_ACCESS_LOG": "false",
        "GENREC_EXPERIMENT_REFRESH_S": str(REFRESH_S),
        "OMP_NUM_THREADS": "1",
    }
    servers = [_start(env, tmp_path, n) for n in range(2)]
    try:
        for proc, url, log in servers:
            _wait_ready(url, proc, log)
        yield [url for _, url, _ in servers]
    finally:
        for proc, _, _ in servers:
            proc.terminate()
        for proc, _, _ in servers:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def _recs(base_url: str, user: str) -> dict[str, Any]:
    response = httpx.get(f"{base_url}/v1/users/{user}/recommendations", params={"k": 3})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _until(check: Any, what: str) -> None:
    """Wait for ``check()`` (the other replica's refresh), at most 50 refresh intervals."""
    deadline = time.monotonic() + 50 * REFRESH_S
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {50 * REFRESH_S:.0f} s: {what}")
        time.sleep(REFRESH_S / 4)


def test_same_user_same_variant_on_both_servers_and_stop_reaches_both(
    two_servers: list[str],
) -> None:
    first, second = two_servers
    body = {
        "name": "replicas",
        "variants": [
            {"name": "control", "model": "popularity", "weight": 1},
            {"name": "treatment", "model": "ease", "weight": 1},
        ],
    }
    created = httpx.post(f"{first}/admin/experiments", json=body, headers=AUTH)
    assert created.status_code == 201, created.text
    _until(lambda: "experiment" in _recs(second, "u0"), "the second server sees the experiment")
    users = [f"u{n}" for n in range(24)]
    on_first = {u: _recs(first, u)["variant"] for u in users}
    on_second = {u: _recs(second, u)["variant"] for u in users}
    assert on_first == on_second
    assert set(on_first.values()) == {"control", "treatment"}
    stopped = httpx.post(f"{first}/admin/experiments/replicas/stop", headers=AUTH)
    assert stopped.status_code == 200
    assert "experiment" not in _recs(first, "u0")  # the server that took the call: at once
    _until(lambda: "experiment" not in _recs(second, "u0"), "the second server sees the stop")
    after = [_recs(second, u) for u in users]
    assert {a["model"] for a in after} == {"mult-vae"}  # the default model
    assert all("variant" not in a for a in after)
