"""The worker loop: ``run_worker`` / ``genrec worker`` in embedded mode, schedule, shutdown.

Single jobs are tested in ``tests/app/retrain/test_runner.py``; the
multi-process acceptance tests (real Postgres and Redis, SIGKILL) are in
``tests/e2e/test_retrain_e2e.py``.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from click.testing import Result
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from app import worker as worker_module
from app.cli import app as cli
from app.core.config import get_settings
from app.core.db import session_scope
from app.db_models import RetrainJob
from app.repository import NewInteraction, add_interactions
from app.retrain import lifecycle as lc
from app.retrain.lifecycle import RetrainRequest
from app.worker import Worker, build_context, run_worker
from models_store import ModelStore
from tests.app.conftest import embedded_settings
from tests.conftest import REPO_ROOT, age_log
from tests.db_faults import REFUSED, multi_line_records, unreachable, warnings_with


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture
def logged(sqlite_url: str, sessions: sessionmaker[Session]) -> None:
    """Clicks of 8 users over 30 items (enough items for ndcg@20), logged before the
    commit margin of a job's read: its training data."""
    rows = [
        NewInteraction(f"user{u}", f"item{(u * 7 + k) % 30}", None)
        for u in range(8)
        for k in range(12)
    ]
    with session_scope(sessions) as session:
        add_interactions(session, rows)
    age_log(sqlite_url)


def test_periodic_retraining_in_embedded_mode(
    sqlite_url: str, tmp_path: Path, sessions: sessionmaker[Session], logged: None
) -> None:
    """No job and RETRAIN_EVERY set: a worker schedules one for the default model and runs it."""
    settings = embedded_settings(
        database_url=sqlite_url,
        store_dir=tmp_path / "store",
        default_model="ease",
        retrain_every="1h",
    )
    assert run_worker(settings, once=True) == 1
    jobs = lc.list_jobs(sessions)
    assert [(j.trigger, j.status, j.promoted) for j in jobs] == [("schedule", "succeeded", True)]
    assert jobs[0].gate["reason"] == "no production version yet"
    assert ModelStore(tmp_path / "store").alias_state("ease") == jobs[0].result_version
    assert run_worker(settings, once=True) == 0  # scheduled less than an hour ago: nothing new


def test_periodic_retraining_follows_the_automatic_default_model(
    sqlite_url: str,
    tmp_path: Path,
    sessions: sessionmaker[Session],
    logged: None,
    train: Callable[..., str],
) -> None:
    """GENREC_DEFAULT_MODEL unset and only ease in production: ease is what gets retrained."""
    train(ModelStore(tmp_path / "store"), "ease")
    settings = embedded_settings(
        database_url=sqlite_url, store_dir=tmp_path / "store", retrain_every="1h"
    )
    assert not settings.default_model_explicit
    assert run_worker(settings, once=True) == 1
    assert [job.model for job in lc.list_jobs(sessions)] == ["ease"]


def test_no_schedule_by_default(sqlite_url: str, tmp_path: Path, logged: None) -> None:
    settings = embedded_settings(database_url=sqlite_url, store_dir=tmp_path / "store")
    assert settings.retrain_every is None
    assert run_worker(settings, once=True) == 0


def test_stop_request_hands_the_running_job_back(
    sqlite_url: str, tmp_path: Path, sessions: sessionmaker[Session], logged: None
) -> None:
    """SIGTERM sets ``stop``: the job stops at its next epoch and is queued for another worker."""
    settings = embedded_settings(database_url=sqlite_url, store_dir=tmp_path / "store")
    worker = Worker(build_context(settings))
    # A job long enough to be stopped: no early stopping, which would end it first.
    overrides = {"epochs": 400, "hidden_dim": 8, "patience": "none"}
    job = lc.enqueue(sessions, RetrainRequest("mult-vae", overrides))
    outcomes: list[str] = []
    ran: list[int] = []
    thread = threading.Thread(target=lambda: ran.append(worker.run(True, None, outcomes)))
    thread.start()
    for _ in range(300):
        progress = lc.get_job(sessions, job.id).progress or {}
        if progress.get("epoch"):
            break
        threading.Event().wait(0.05)
    worker.stop.set()
    thread.join(timeout=30)
    row = lc.get_job(sessions, job.id)
    assert not thread.is_alive()
    assert (row.status, row.worker_id, row.result_version) == ("queued", None, None)
    assert row.attempts == 0  # handed back: a rolling restart uses up no attempt
    assert "shutting down" in row.log_tail
    # A job handed back was not run: "worker stopped after 1 job(s)" counted it.
    assert (ran, outcomes) == ([0], ["stopping"])


def test_a_database_error_between_jobs_is_logged_in_one_line(
    sqlite_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A polling worker waits a database error out, saying so in one line (it printed
    SQLAlchemy's multi-line text, SQL and link included)."""
    settings = embedded_settings(database_url=sqlite_url, store_dir=tmp_path / "store")
    worker = Worker(build_context(settings))

    def away(*_args: object) -> list[int]:
        worker.stop.set()  # one poll is enough
        raise unreachable("SELECT retrain_jobs.id FROM retrain_jobs ...")

    monkeypatch.setattr(worker_module, "fail_exhausted", away)
    with caplog.at_level(logging.WARNING, logger=worker_module.__name__):
        assert worker.run() == 0
    assert warnings_with(caplog, "database error") == [
        f"worker {worker.worker_id}: database error: OperationalError: {REFUSED}"
    ]
    assert multi_line_records(caplog) == []


@pytest.mark.parametrize(
    ("outcomes", "line"),
    [
        ([], "worker stopped after 0 job(s)"),
        (["succeeded", "failed"], "worker stopped after 2 job(s)"),
        (["succeeded", "stopping"], "worker stopped after 1 job(s); 1 handed back to the queue"),
    ],
)
def test_genrec_worker_counts_the_jobs_it_ran_to_an_end(
    outcomes: list[str], line: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import app.worker

    def ran(*args: object, outcomes: list[str], **kwargs: object) -> int:
        outcomes.extend(given)
        return sum(o != "stopping" for o in given)

    given = outcomes
    monkeypatch.setattr(app.worker, "run_worker", ran)
    monkeypatch.setenv("GENREC_DATABASE_URL", f"sqlite:///{tmp_path}/log.db")
    monkeypatch.setenv("GENREC_STORE_DIR", str(tmp_path / "store"))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, ["worker"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == line


def _worker_once(
    sqlite_url: str,
    tmp_path: Path,
    sessions: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[RetrainJob, Result]:
    """A popularity retrain job queued, then `genrec worker --once` on it: (job, result)."""
    monkeypatch.setenv("GENREC_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("GENREC_STORE_DIR", str(tmp_path / "store"))
    get_settings.cache_clear()
    job = lc.enqueue(sessions, RetrainRequest("popularity", data="log", promote="never"))
    try:
        result = CliRunner().invoke(cli, ["worker", "--once", "--poll-interval", "0.1"])
    finally:
        get_settings.cache_clear()
    return job, result


def test_genrec_worker_once_command(
    sqlite_url: str,
    tmp_path: Path,
    sessions: sessionmaker[Session],
    logged: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job, result = _worker_once(sqlite_url, tmp_path, sessions, monkeypatch)
    assert result.exit_code == 0, result.output
    row = lc.get_job(sessions, job.id)
    assert (row.status, row.promoted) == ("succeeded", False)
    assert ModelStore(tmp_path / "store").alias_state("popularity") is None


def test_genrec_worker_once_exits_non_zero_when_its_job_failed(
    sqlite_url: str,
    tmp_path: Path,
    sessions: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The job failed (an empty interaction log) and the command exited 0, as a success."""
    job, result = _worker_once(sqlite_url, tmp_path, sessions, monkeypatch)
    assert lc.get_job(sessions, job.id).status == "failed"
    assert result.exit_code == 2, result.output
    assert "worker stopped after 1 job(s)" in result.output
    assert "error: the job failed: its log says why" in result.output


def test_genrec_worker_once_on_an_unreachable_database_fails_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It logged a warning and exited 0, as if it had found no job."""
    monkeypatch.setenv("GENREC_DATABASE_URL", "postgresql://postgres:s3cret@127.0.0.1:1/x")
    monkeypatch.setenv("GENREC_STORE_DIR", str(tmp_path / "store"))
    monkeypatch.setenv("GENREC_AUTO_MIGRATE", "false")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, ["worker", "--once"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot reach the database at "), lines
    assert "127.0.0.1:1" in lines[0] and "refused" in lines[0] and "s3cret" not in lines[0]


def test_genrec_worker_refuses_to_schedule_retrains_of_an_unknown_default_model(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A misspelt GENREC_DEFAULT_MODEL with GENREC_RETRAIN_EVERY: the first schedule raised
    InvalidJob out of the worker's loop, a traceback, on every start."""
    monkeypatch.setenv("GENREC_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("GENREC_STORE_DIR", str(tmp_path / "store"))
    monkeypatch.setenv("GENREC_DEFAULT_MODEL", "multvae")
    monkeypatch.setenv("GENREC_RETRAIN_EVERY", "1h")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, ["worker", "--once"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: GENREC_DEFAULT_MODEL"), lines
    assert "unknown model 'multvae'" in lines[0] and "GENREC_RETRAIN_EVERY" in lines[0]


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_genrec_worker_logs_in_the_format_serve_does(
    sqlite_url: str, tmp_path: Path, log_format: str
) -> None:
    """GENREC_LOG_FORMAT (json by default) was ignored: the worker always logged text."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENREC_")}
    env |= {
        "GENREC_DATABASE_URL": sqlite_url,
        "GENREC_STORE_DIR": str(tmp_path / "store"),
        "GENREC_LOG_FORMAT": log_format,
        "PYTHONPATH": str(REPO_ROOT),  # this checkout's app, whatever is installed
    }
    run = subprocess.run(
        [sys.executable, "-m", "app.cli", "worker", "--once"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    polling = [line for line in run.stderr.splitlines() if "polling every" in line]
    assert len(polling) == 1, run.stderr
    if log_format == "json":
        entry = json.loads(polling[0])
        assert (entry["level"], entry["logger"]) == ("INFO", "app.worker"), entry
    else:
        assert " INFO app.worker: worker " in polling[0], polling


def test_the_workers_engine_takes_the_connect_timeout_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It used the driver's 10 s whatever GENREC_DB_CONNECT_TIMEOUT_S said, so a black-holed
    database held a lease renewal (and a stopping worker) that long."""
    import app.worker
    from app.core.config import Settings
    from app.core.db import make_engine

    made: list[float] = []

    def recording(url: str, connect_timeout_s: float = 10.0, **kwargs: object) -> object:
        made.append(connect_timeout_s)
        return make_engine(url, connect_timeout_s, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(app.worker, "make_engine", recording)
    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/w.db",
        store_dir=tmp_path / "store",
        auto_migrate=False,
        db_connect_timeout_s=2.0,
    )
    build_context(settings).engine.dispose()
    assert made == [2.0]
