"""End-to-end helpers: real ``genrec serve`` / ``genrec worker`` processes on free ports.

Processes get their settings from ``GENREC_*`` environment variables, exactly
as a deployment does, and write their output to a log file that tests read
(e.g. to check the admin token never appears in it). Every process a test
starts is killed when the test ends.
"""

# ruff: noqa: E402  (imports follow the sys.path fix below)

from __future__ import annotations

import sys
from pathlib import Path

_REPO_ROOT = str(Path(__file__).resolve().parents[2])
if _REPO_ROOT not in sys.path:  # see tests/app/conftest.py: tests/app must not shadow ``app``
    sys.path.insert(0, _REPO_ROOT)

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
import pandas as pd
import pytest

from app.core.db import make_engine, make_sessionmaker, session_scope, upgrade_database
from app.repository import ACTIVE_JOB_STATUSES, cancel_job, list_jobs
from tests.conftest import fresh_redis_namespace, reachable_redis_url

ADMIN_TOKEN = "e2e-admin-token-91f3c0"
#: ML-100K users 1..N form the base data set the seeded production versions train on.
BASE_USERS = 200
#: Tiny mult-vae for the seeded production version (the SIGKILL test's base).
SEED_VAE = {"epochs": 1, "hidden_dim": 16, "latent_dim": 8}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def genrec_command(*args: str) -> list[str]:
    """``genrec ARGS`` from this interpreter's environment (the console script when present)."""
    script = Path(sys.executable).with_name("genrec")
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-m", "app.cli", *args]


@dataclass
class Proc:
    """A started ``genrec`` process whose stdout and stderr go to ``log_path``."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.alive():
            self.popen.send_signal(sig)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit in ``timeout``; returns the exit code."""
        if self.alive():
            self.popen.terminate()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        return self.popen.returncode

    def wait(self, timeout: float) -> int:
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"{self.name} did not exit within {timeout}s; output:\n{self.output()[-4000:]}"
            ) from None


@dataclass
class Stack:
    """Environment of one test's processes, and the processes it started."""

    env: dict[str, str]
    store_dir: Path
    logs: Path
    procs: list[Proc] = field(default_factory=list)
    base_url: str = ""

    def start(self, name: str, *args: str, **extra_env: str) -> Proc:
        log_path = self.logs / f"{name}.log"
        handle = log_path.open("wb")
        popen = subprocess.Popen(
            genrec_command(*args),
            env={**self.env, **extra_env},
            stdout=handle,
            stderr=subprocess.STDOUT,
            cwd=self.logs,
        )
        handle.close()
        proc = Proc(name, popen, log_path)
        self.procs.append(proc)
        return proc

    def serve(self, timeout: float = 90.0) -> Proc:
        """Start ``genrec serve`` on a free port and wait for ``/readyz``."""
        port = free_port()
        proc = self.start("server", "serve", "--host", "127.0.0.1", "--port", str(port))
        self.base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not proc.alive():
                raise AssertionError(f"server exited early:\n{proc.output()[-4000:]}")
            try:
                if httpx.get(f"{self.base_url}/readyz", timeout=2).status_code == 200:
                    return proc
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"server not ready in {timeout}s:\n{proc.output()[-4000:]}")

    def worker(self, *args: str, **extra_env: str) -> Proc:
        return self.start(f"worker-{len(self.procs)}", "worker", *args, **extra_env)

    def client(self, token: str | None = ADMIN_TOKEN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30)

    def all_output(self) -> str:
        return "\n".join(p.output() for p in self.procs)


@pytest.fixture(scope="session")
def base_csv(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ML-100K ratings of users 1..BASE_USERS as a CSV: the base data set, loadable by path."""
    frame = pd.read_csv(
        data_dir / "ml-100k" / "u.data",
        sep="\t",
        names=["user_id", "item_id", "rating", "timestamp"],
    )
    path = tmp_path_factory.mktemp("base") / "ml100k-head.csv"
    frame[frame.user_id <= BASE_USERS].to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def seeded_store(base_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with production ``ease`` v1 and ``mult-vae`` v1 trained on the base CSV (read-only)."""
    import torch

    from models_store import ModelStore
    from training.data.files import read_interaction_file
    from training.pipeline import train_and_save

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("seeded-store")
    store = ModelStore(root)
    data = read_interaction_file(base_csv)
    train_and_save(store, "ease", data, source=str(base_csv), promote=True)
    train_and_save(store, "mult-vae", data, dict(SEED_VAE), source=str(base_csv), promote=True)
    return root


def _cancel_leftover_jobs(database_url: str) -> None:
    """The session's Postgres database is shared: no earlier test's job may reach our workers."""
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    try:
        with session_scope(sessions) as session:
            for status in ACTIVE_JOB_STATUSES:
                for job in list_jobs(session, status=status, limit=10_000):
                    cancel_job(session, job.id, job.updated_at)
    finally:
        engine.dispose()


@pytest.fixture
def stack(
    postgres_url: str,
    redis_url: str,
    redis_namespace: str,
    data_dir: Path,
    seeded_store: Path,
    tmp_path: Path,
) -> Iterator[Stack]:
    """Real Postgres + Redis, a private copy of the seeded store; processes killed afterwards."""
    with running_stack(
        postgres_url, redis_url, redis_namespace, data_dir, seeded_store, tmp_path
    ) as started:
        yield started


@pytest.fixture(scope="module")
def module_stack(
    postgres_url: str,
    data_dir: Path,
    seeded_store: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    """``stack``, shared by the tests of one module (its processes killed after the last):
    for tests that change nothing a later test reads, so that they start one ``genrec
    serve`` (seconds of imports on a busy machine) rather than one each."""
    root = tmp_path_factory.mktemp("module-stack")
    redis_url = reachable_redis_url()
    with (
        fresh_redis_namespace(redis_url) as namespace,
        running_stack(postgres_url, redis_url, namespace, data_dir, seeded_store, root) as started,
    ):
        yield started


@contextmanager
def running_stack(
    postgres_url: str,
    redis_url: str,
    redis_namespace: str,
    data_dir: Path,
    seeded_store: Path,
    root: Path,
) -> Iterator[Stack]:
    """A ``Stack`` with its store and logs under ``root``; its processes killed at the end."""
    upgrade_database(postgres_url)  # before server and worker, which would both migrate at once
    _cancel_leftover_jobs(postgres_url)
    store_dir = root / "store"
    shutil.copytree(seeded_store, store_dir)
    logs = root / "logs"
    logs.mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GENREC_")},
        "GENREC_DATABASE_URL": postgres_url,
        "GENREC_REDIS_URL": redis_url,
        "GENREC_CACHE_NAMESPACE": redis_namespace,
        "GENREC_STORE_DIR": str(store_dir),
        "GENREC_DATA_DIR": str(data_dir),
        "GENREC_ADMIN_TOKEN": ADMIN_TOKEN,
        "GENREC_DEFAULT_MODEL": "ease",
        "GENREC_RELOAD_INTERVAL_S": "0.5",
        "GENREC_JOB_POLL_INTERVAL_S": "0.3",
        "GENREC_LOG_LEVEL": "INFO",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    stack = Stack(env=env, store_dir=store_dir, logs=logs)
    try:
        yield stack
    finally:
        for proc in stack.procs:
            proc.kill()
        for proc in stack.procs:
            proc.popen.wait(10)
