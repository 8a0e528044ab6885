"""Leases run on the database's clock: a worker whose own clock is far off neither
takes over a live job nor loses its own, on SQLite and on Postgres."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from app import repository as repo
from app.core.db import make_engine, make_sessionmaker, session_scope, upgrade_database
from app.db_models import RetrainJob
from app.retrain import lifecycle as lc
from app.retrain.lifecycle import RetrainRequest

#: Far more than any lease: a machine whose clock was never synchronised.
SKEW = timedelta(minutes=30)


@pytest.fixture
def job_sessions(blank_database_url: str) -> Iterator[sessionmaker[Session]]:
    """A migrated database of its own on each backend (its jobs are the test's alone)."""
    upgrade_database(blank_database_url)
    engine = make_engine(blank_database_url)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def clock_off(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[timedelta], None]]:
    """``clock_off(delta)``: from now on this process's workers read a clock ``delta`` off."""
    real = lc.utcnow

    def set_off(delta: timedelta) -> None:
        monkeypatch.setattr(lc, "utcnow", lambda: real() + delta)

    yield set_off


@pytest.mark.parametrize(
    ("holder", "taker"), [(timedelta(0), SKEW), (-SKEW, timedelta(0))], ids=["ahead", "behind"]
)
def test_a_clock_far_off_lets_no_worker_take_a_live_job(
    job_sessions: sessionmaker[Session],
    clock_off: Callable[[timedelta], None],
    holder: timedelta,
    taker: timedelta,
) -> None:
    """Ahead: the taker's "now" is past every live lease. Behind: the lease the holder
    writes has expired by everyone else's clock. Either way nobody may take it over."""
    job = lc.enqueue(job_sessions, RetrainRequest("ease"))
    clock_off(holder)
    first = lc.claim_next(job_sessions, "holder", 60)
    assert first is not None and first.id == job.id
    clock_off(taker)
    assert lc.claim_next(job_sessions, "taker", 60) is None
    assert lc.get_job(job_sessions, job.id).worker_id == "holder"


def test_a_clock_far_ahead_does_not_fail_a_live_job_on_its_last_attempt(
    job_sessions: sessionmaker[Session], clock_off: Callable[[timedelta], None]
) -> None:
    job = lc.enqueue(job_sessions, RetrainRequest("ease"))
    with session_scope(job_sessions) as session:
        session.execute(update(RetrainJob).values(max_attempts=1))
    assert lc.claim_next(job_sessions, "holder", 60) is not None
    clock_off(SKEW)
    assert lc.fail_exhausted(job_sessions) == []
    assert lc.get_job(job_sessions, job.id).status == "running"


def test_a_lagging_workers_renewals_keep_its_lease(
    job_sessions: sessionmaker[Session], clock_off: Callable[[timedelta], None]
) -> None:
    """A worker 30 minutes behind renews a lease that is live by the database's clock."""
    job = lc.enqueue(job_sessions, RetrainRequest("ease"))
    clock_off(-SKEW)
    claimed = lc.claim_next(job_sessions, "slow", 60)
    assert claimed is not None
    fence = repo.JobFence(job.id, "slow", claimed.attempts)
    with lc.JobLease(job_sessions, fence, 60, threading.Event(), clock=lc.utcnow) as lease:
        assert lease.still_held()
        clock_off(timedelta(0))
        assert lc.claim_next(job_sessions, "thief", 60) is None
        lease.check()
        assert lease.finish("succeeded")
    assert lc.get_job(job_sessions, job.id).status == "succeeded"
