"""Where a tune job's Optuna study lives: the service's own database.

Optuna's RDB storage keeps its tables (``studies``, ``trials``, ...) and its own
``alembic_version``, which would clash with the service's in one schema. On
Postgres they live in the schema ``optuna`` (created by migration 0006; the
storage's connections set ``search_path`` to it), so every worker that reaches
the service database reaches the study. Embedded (SQLite) they live in a file
next to the database (``genrec.db`` -> ``genrec-optuna.db``): one machine, the
same sharing between processes.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import optuna
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from app.retrain.lifecycle import error_line
from training.tuning.errors import TuningError

OPTUNA_SCHEMA = "optuna"
#: Optuna heartbeats: every running trial records one this often, and a trial whose last
#: one is older than the grace period (its worker died) is failed by the next process
#: that starts a trial or by the lead while it waits, instead of staying "running".
HEARTBEAT_INTERVAL_S = 10
HEARTBEAT_GRACE_S = 40


def study_name(job_id: int) -> str:
    """One study per tune job (every attempt and every helper of the job shares it)."""
    return f"genrec-tune-job-{job_id}"


def optuna_sqlite_path(database: str) -> Path:
    """``genrec.db`` -> ``genrec-optuna.db`` (same folder)."""
    path = Path(database)
    return path.with_name(f"{path.stem}-optuna{path.suffix or '.db'}")


def open_study_storage(database_url: str, attempts: int = 3) -> optuna.storages.RDBStorage:
    """Optuna's storage in the service database (see the module doc).

    Retried briefly: two processes opening a fresh storage at once can race on
    Optuna's ``CREATE TABLE``; the second attempt finds the tables.
    """
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":
        target = database_url
        kwargs: dict[str, object] = {
            "connect_args": {"options": f"-csearch_path={OPTUNA_SCHEMA}"},
            "pool_pre_ping": True,
        }
    elif url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        path = optuna_sqlite_path(str(url.database))
        path.parent.mkdir(parents=True, exist_ok=True)
        target = f"sqlite:///{path}"
        kwargs = {"connect_args": {"timeout": 30}}
    else:
        raise TuningError(f"cannot keep a tuning study in {url.render_as_string()!r}")
    for attempt in range(attempts):
        try:
            with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna 5
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    target,
                    engine_kwargs=kwargs,
                    heartbeat_interval=HEARTBEAT_INTERVAL_S,
                    grace_period=HEARTBEAT_GRACE_S,
                )
        except SQLAlchemyError as exc:
            if attempt == attempts - 1:
                raise TuningError(f"cannot open the study storage: {error_line(exc)}") from exc
            time.sleep(1.0)
    raise AssertionError("unreachable")
