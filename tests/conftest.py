"""Fixtures shared by the whole suite: real data location and the real services.

Integration tests talk to the real Postgres and Redis. Locally, a missing
service skips those tests with the reason; under CI (``CI=true``) it fails the
run instead, so a green CI always means they ran.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from pathlib import Path
from typing import NoReturn

import pytest

from training.data import log_reader

REPO_ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
POSTGRES_ADMIN_URL = os.environ.get(
    "GENREC_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_TEST_URL = os.environ.get("GENREC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def required_but_missing(message: str) -> NoReturn:
    """A required resource is absent: a failure under CI, a skip with the reason locally."""
    if not IN_CI:
        pytest.skip(message)
    pytest.fail(message + " (CI=true: required, not skipped)")


def _service_missing(what: str, exc: Exception) -> None:
    required_but_missing(f"{what} is not reachable ({exc}); integration tests need it")


def require_tool(name: str, needed_for: str, package: str | None = None) -> str:
    """The path of the executable ``name``; when it is not on PATH the test is skipped
    with the reason locally and fails under CI (``.ci/run`` installs it)."""
    path = shutil.which(name)
    if path is None:
        required_but_missing(
            f"{name} not found on PATH; {needed_for} (apt-get install {package or name})"
        )
    return path


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real MovieLens copies (``GENREC_DATA_DIR``, else ``../shared/data``)."""
    path = Path(os.environ.get("GENREC_DATA_DIR", REPO_ROOT.parent / "shared" / "data"))
    if not (path / "ml-100k" / "u.data").exists():
        required_but_missing(f"MovieLens-100K not found under {path}; set GENREC_DATA_DIR")
    return path


@contextmanager
def scratch_database(server_url: str, prefix: str) -> Iterator[str]:
    """Create an empty database named ``prefix_<random>`` on the Postgres at
    ``server_url``, yield its URL, and drop it (ending its sessions) afterwards.

    Tests whose workers claim retrain jobs take a database of their own this
    way, so they never see jobs another test queued.
    """
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception:
        admin.dispose()
        raise
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
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


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a fresh, empty Postgres database for this test session; dropped afterwards."""
    with ExitStack() as stack:
        try:
            url = stack.enter_context(scratch_database(POSTGRES_ADMIN_URL, "genrec_test"))
        except Exception as exc:  # any connection failure means the service is missing
            _service_missing("PostgreSQL", exc)
        yield url


def reachable_redis_url() -> str:
    """``REDIS_TEST_URL`` once Redis answers a ping (skip or fail as ``_service_missing``)."""
    import redis

    client = redis.Redis.from_url(REDIS_TEST_URL)
    try:
        client.ping()
    except Exception as exc:
        _service_missing("Redis", exc)
    finally:
        client.close()
    return REDIS_TEST_URL


@contextmanager
def fresh_redis_namespace(redis_url: str) -> Iterator[str]:
    """A unique key prefix; its keys are deleted when the block ends."""
    import redis

    namespace = f"genrec-test-{uuid.uuid4().hex[:10]}"
    yield namespace
    client = redis.Redis.from_url(redis_url)
    try:
        for key in client.scan_iter(match=f"{namespace}:*"):
            client.delete(key)
    except Exception:
        pass  # a test may have stopped Redis on purpose
    finally:
        client.close()


@pytest.fixture
def redis_url() -> str:
    """The real Redis; tests isolate themselves with ``redis_namespace``."""
    return reachable_redis_url()


@pytest.fixture
def redis_namespace(redis_url: str) -> Iterator[str]:
    """A unique key prefix for one test; its keys are deleted afterwards."""
    with fresh_redis_namespace(redis_url) as namespace:
        yield namespace


#: The log read's commit margin in service (``log_reader.COMMIT_MARGIN``). Every test
#: reads the log with it, as the service does: a test that logs and trains at once dates
#: its rows before it (``age_log``).
COMMIT_MARGIN = log_reader.COMMIT_MARGIN


def age_log(database_url: str, by: timedelta = 2 * COMMIT_MARGIN) -> None:
    """Date every logged interaction ``by`` earlier, as if written that long ago.

    A read of the log (a job's, ``genrec train --data db``'s) goes up to the database's
    clock less the commit margin, so a test that logs and trains at once would train on
    none of it. Ageing the rows keeps the service's rule, in this process and in the
    servers and workers a test starts as processes of their own.
    """
    from sqlalchemy import bindparam, select, update

    from app.core.db import make_engine
    from app.db_models import Interaction

    # Row by row, in Python: interval arithmetic in SQL is not portable (SQLite would
    # turn the text times into numbers); the logs aged here are small.
    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            rows = conn.execute(select(Interaction.id, Interaction.ts, Interaction.created_at))
            aged = [
                {"row_id": row.id, "aged_ts": row.ts - by, "aged_created_at": row.created_at - by}
                for row in rows
            ]
            if aged:
                conn.execute(
                    update(Interaction)
                    .where(Interaction.id == bindparam("row_id"))
                    .values(ts=bindparam("aged_ts"), created_at=bindparam("aged_created_at")),
                    aged,
                )
    finally:
        engine.dispose()
