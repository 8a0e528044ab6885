"""A job's attempt has a time limit (``GENREC_JOB_MAX_HOURS``): past it the lease is no
longer renewed, so a worker hung in a step that never returns does not hold its job for
ever. The attempt is then failed (its last) or left to a takeover (attempts remain)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from app import repository as repo
from app.core.db import session_scope
from app.db_models import RetrainJob
from app.retrain import lifecycle as lc
from app.retrain import runner
from app.retrain.lifecycle import RetrainRequest
from app.retrain.runner import JobContext
from app.tune.jobs import TuneRequest, enqueue_tune
from app.worker import Worker, job_time_limit_s
from tests.app.conftest import JobContextFactory
from tests.manual_clock import ManualClock


def _eventually(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    """Poll until the lease's background thread has acted (it wakes every lease_s / 3)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the lease's thread never acted"
        time.sleep(0.01)


def _aborted(lease: lc.JobLease) -> lc.JobAborted | None:
    try:
        lease.check()
    except lc.JobAborted as exc:
        return exc
    return None


def _lease(
    sessions: sessionmaker[Session], job_id: int, last: bool
) -> tuple[lc.JobLease, ManualClock[float]]:
    claimed = lc.claim_next(sessions, "hung", 0.3)
    assert claimed is not None and claimed.id == job_id
    elapsed = ManualClock(0.0)
    lease = lc.JobLease(
        sessions,
        repo.JobFence(job_id, "hung", claimed.attempts),
        0.3,
        threading.Event(),
        max_run_s=3600.0,
        last_attempt=last,
        monotonic=elapsed,
    )
    return lease, elapsed


def test_past_its_limit_an_attempt_stops_renewing_and_is_taken_over(
    sessions: sessionmaker[Session],
) -> None:
    job = lc.enqueue(sessions, RetrainRequest("ease"))
    lease, elapsed = _lease(sessions, job.id, last=False)
    with lease:
        assert _aborted(lease) is None
        elapsed.advance(3601.0)  # the training step never returns; only the thread runs
        _eventually(lambda: _aborted(lease) is not None)
        aborted = _aborted(lease)
        assert aborted is not None and aborted.kind == "interrupted"
        assert "ran past its 1 h limit" in aborted.reason
        assert not lease.still_held()  # nor does the job's own thread renew it
        _eventually(lambda: lc.claim_next(sessions, "next", 60) is not None)
    row = lc.get_job(sessions, job.id)
    assert (row.status, row.worker_id, row.attempts) == ("running", "next", 2)
    assert "ran past its 1 h limit" in (row.log_tail or "")


def test_past_its_limit_the_last_attempt_fails_the_job_with_the_reason(
    sessions: sessionmaker[Session],
) -> None:
    job = lc.enqueue(sessions, RetrainRequest("ease"))
    with session_scope(sessions) as session:
        session.execute(update(RetrainJob).values(max_attempts=1))
    lease, elapsed = _lease(sessions, job.id, last=True)
    with lease:
        elapsed.advance(3601.0)
        _eventually(lambda: lc.get_job(sessions, job.id).status == "failed")
        aborted = _aborted(lease)
        assert aborted is not None and aborted.kind == "failed"
    row = lc.get_job(sessions, job.id)
    assert row.error is not None and "ran past its 1 h limit" in row.error
    assert row.lease_expires_at is None and row.progress == {"phase": "failed"}


def test_a_worker_hung_in_training_has_its_job_failed_on_the_last_attempt(
    make_job_context: JobContextFactory,
    sqlite_url: str,
    sessions: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Through the worker: a step that never returns until the test lets it go."""
    ctx: JobContext = make_job_context(sqlite_url, sessions, job_lease_s=0.3, job_max_hours=1e-4)
    job = lc.enqueue(sessions, RetrainRequest("ease"))
    with session_scope(sessions) as session:
        session.execute(update(RetrainJob).values(max_attempts=1))
    release = threading.Event()

    def hang(*_args: object) -> None:
        release.wait(60)  # a deadlocked fit, a read that never returns
        raise RuntimeError("woke up long after the limit")

    monkeypatch.setattr(runner, "_train_and_save", hang)
    outcomes: list[str | None] = []
    worker = threading.Thread(target=lambda: outcomes.append(Worker(ctx).step()))
    worker.start()
    try:
        _eventually(lambda: lc.get_job(sessions, job.id).status == "failed")
    finally:
        release.set()
        worker.join(60)
    row = lc.get_job(sessions, job.id)
    assert row.error is not None and "ran past its" in row.error
    assert outcomes == ["failed"]


def test_a_tune_jobs_limit_is_its_budget_plus_the_limit_of_any_job(
    make_job_context: JobContextFactory, sqlite_url: str, sessions: sessionmaker[Session]
) -> None:
    ctx = make_job_context(sqlite_url, sessions, job_max_hours=2.0)
    retrain = lc.enqueue(sessions, RetrainRequest("ease"))
    tune = enqueue_tune(sessions, TuneRequest(budget_minutes=600.0))
    assert job_time_limit_s(retrain, ctx.settings) == 2 * 3600.0
    assert job_time_limit_s(tune, ctx.settings) == 2 * 3600.0 + 600 * 60.0
