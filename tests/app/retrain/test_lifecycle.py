"""Job lifecycle rules: validation, exclusive claims, leases and fencing, cancel, schedule."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from app import repository as repo
from app.core.db import make_engine, make_sessionmaker, session_scope, upgrade_database
from app.core.db_time import database_now
from app.db_models import RetrainJob
from app.repository import as_utc
from app.retrain import lifecycle as lc
from app.retrain.lifecycle import RetrainRequest
from tests.db_faults import REFUSED, multi_line_records, unreachable, warnings_with
from tests.job_leases import expire_leases

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _claim(sessions: sessionmaker[Session], worker: str, lease_s: float = 10):
    with session_scope(sessions) as session:
        return repo.claim_job(session, worker, lease_s)


# --------------------------------------------------------------------------- requests


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (RetrainRequest("no-such-model"), "unknown model 'no-such-model'"),
        (RetrainRequest("ease", {"nope": 1}), "unknown setting 'nope'"),
        (RetrainRequest("ease", data="everything"), "data must be one of"),  # type: ignore[arg-type]
        (RetrainRequest("ease", promote="maybe"), "promote must be one of"),  # type: ignore[arg-type]
        (RetrainRequest("mult-vae", {"epochs": "many"}), "cannot read 'many' as an integer"),
        # Values no training can use fail here, not minutes later in a worker's fit():
        (RetrainRequest("mult-vae", {"epochs": -5}), "epochs must be >= 1, got -5"),
        (RetrainRequest("mult-vae", {"epsilon_std": -1.0}), "epsilon_std must be >= 0"),
        (RetrainRequest("mult-dae", {"dropout": 1.0}), "dropout must be in"),
        (RetrainRequest("i-autorec", {"hidden": 0}), "hidden must be at least 1"),
        (RetrainRequest("cf-nade", {"n_layers": 3}), "n_layers must be 1 or 2"),
        (RetrainRequest("i-cf-nade", {"fold_in_steps": 0}), "fold_in_steps >= 1"),
        (RetrainRequest("cf-rbm", {"momentum": 1.0}), "momentum must lie in"),
        (RetrainRequest("biased-mf", {"optimizer": "lbfgs"}), "optimizer must be"),
        (RetrainRequest("pmf", {"factors": 0}), "factors must be >= 1"),
        (RetrainRequest("convmf", {"cnn_epochs": -1}), "cnn_epochs must be >= 0"),
        (RetrainRequest("ease", {"l2": 0.0}), "l2 must be > 0"),
        (RetrainRequest("bpr-mf", {"dim": 0}), "dim must be >= 1"),
        (RetrainRequest("irgan", {"temperature": 0.0}), "temperature must be > 0"),
    ],
)
def test_invalid_requests_are_refused_with_the_reason(
    request_: RetrainRequest, message: str, sessions: sessionmaker[Session]
) -> None:
    with pytest.raises(lc.InvalidJob, match=message):
        lc.enqueue(sessions, request_)
    assert lc.list_jobs(sessions) == []


def test_enqueued_job_is_a_queued_row(sessions: sessionmaker[Session]) -> None:
    job = lc.enqueue(sessions, RetrainRequest("ease", {"l2": 10.0}, "log", "never"))
    row = lc.get_job(sessions, job.id)
    assert (row.status, row.model, row.params, row.data, row.promote, row.trigger) == (
        "queued",
        "ease",
        {"l2": 10.0},
        "log",
        "never",
        "api",
    )
    assert (row.attempts, row.worker_id, row.lease_expires_at) == (0, None, None)


def test_unknown_job_is_not_found(sessions: sessionmaker[Session]) -> None:
    with pytest.raises(lc.JobNotFound, match=r"^no job 42$"):
        lc.get_job(sessions, 42)
    with pytest.raises(lc.JobNotFound):
        lc.cancel_job(sessions, 42)


# --------------------------------------------------------------------------- claims


def test_claim_takes_the_oldest_job_once(sessions: sessionmaker[Session]) -> None:
    first = lc.enqueue(sessions, RetrainRequest("ease"), now=T0)
    second = lc.enqueue(sessions, RetrainRequest("ease"), now=T0 + timedelta(seconds=1))
    a = _claim(sessions, "a")
    b = _claim(sessions, "b")
    assert (a.id, a.worker_id, a.attempts, a.status) == (first.id, "a", 1, "running")
    assert (b.id, b.worker_id) == (second.id, "b")
    assert _claim(sessions, "c") is None


def test_expired_lease_is_taken_over_and_fences_the_old_holder(
    sessions: sessionmaker[Session],
) -> None:
    job = lc.enqueue(sessions, RetrainRequest("ease"), now=T0)
    old = _claim(sessions, "dead", lease_s=5)
    assert _claim(sessions, "other") is None  # lease still valid
    expire_leases(sessions)
    new = _claim(sessions, "other")
    assert (new.id, new.worker_id, new.attempts) == (job.id, "other", 2)
    stale = repo.JobFence(job.id, "dead", old.attempts)
    later = T0 + timedelta(seconds=7)
    with session_scope(sessions) as session:
        assert not repo.renew_job_lease(session, stale, 60)
        assert not repo.write_job_progress(session, stale, later, {"epoch": 1}, "")
        assert not repo.finish_job(session, stale, later, status="succeeded", log_tail="")
        held = repo.JobFence(job.id, "other", 2)
        assert repo.finish_job(session, held, later, status="succeeded", log_tail="done")
    assert lc.get_job(sessions, job.id).status == "succeeded"


def test_job_whose_workers_keep_dying_is_failed(sessions: sessionmaker[Session]) -> None:
    job = lc.enqueue(sessions, RetrainRequest("ease"), now=T0)
    for attempt in range(lc.DEFAULT_MAX_ATTEMPTS):
        assert _claim(sessions, f"w{attempt}", lease_s=5).attempts == attempt + 1
        expire_leases(sessions)  # its worker died
    last = repo.JobFence(job.id, f"w{lc.DEFAULT_MAX_ATTEMPTS - 1}", lc.DEFAULT_MAX_ATTEMPTS)
    with session_scope(sessions) as session:
        assert repo.write_job_progress(session, last, T0, {"phase": "training", "epoch": 2}, "")
    assert _claim(sessions, "late") is None  # no attempts left
    expired_at = lc.get_job(sessions, job.id).lease_expires_at
    assert expired_at is not None
    with session_scope(sessions) as session:
        assert repo.fail_exhausted_jobs(session, "gave up") == [job.id]
    row = lc.get_job(sessions, job.id)
    assert (row.status, row.error, row.attempts) == ("failed", "gave up", 3)
    assert row.progress == {"phase": "failed", "epoch": 2}  # no longer "training"
    # The tail says why the last attempt's lines end (the error says "see the log tail").
    last_line = (row.log_tail or "").splitlines()[-1]
    assert last_line.endswith(
        "attempt 3 (worker w2): its lease expired at "
        f"{as_utc(expired_at).strftime('%H:%M:%SZ')} without a hand-back (the worker died or "
        "lost the database); no attempts left: the job failed"
    ), row.log_tail


def _claim_race(
    sessions: sessionmaker[Session], n_jobs: int, n_workers: int
) -> tuple[list[int], list[int]]:
    """(ids enqueued, ids claimed by ``n_workers`` threads claiming until nothing is left)."""
    created = [lc.enqueue(sessions, RetrainRequest("ease")).id for _ in range(n_jobs)]
    claimed: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(n_workers)

    def work(name: str) -> None:
        barrier.wait()
        while (job := lc.claim_next(sessions, name, 60)) is not None:
            with lock:
                claimed.append(job.id)

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(n_workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return created, claimed


def test_concurrent_claims_on_sqlite_never_share_a_job(sessions: sessionmaker[Session]) -> None:
    created, claimed = _claim_race(sessions, n_jobs=12, n_workers=4)
    assert sorted(claimed) == created


@pytest.mark.integration
def test_concurrent_claims_on_postgres_never_share_a_job(postgres_url: str) -> None:
    """``FOR UPDATE SKIP LOCKED``: four workers, twelve jobs, each claimed exactly once."""
    upgrade_database(postgres_url)
    engine = make_engine(postgres_url)
    sessions = make_sessionmaker(engine)
    created: list[int] = []
    try:
        created, claimed = _claim_race(sessions, n_jobs=12, n_workers=4)
        # The database is shared with other tests: only ours are known to be claimable.
        assert len(claimed) == len(set(claimed)) and set(created) <= set(claimed)
        with session_scope(sessions) as session:
            rows = [repo.get_job(session, i) for i in created]
        assert all(r is not None and r.status == "running" and r.attempts == 1 for r in rows)
    finally:
        for job_id in created:  # leave no job for the workers of later tests to pick up
            lc.cancel_job(sessions, job_id)
        engine.dispose()


# --------------------------------------------------------------------------- lease object


def test_cancel_reaches_the_running_job_at_its_next_report(
    sessions: sessionmaker[Session],
) -> None:
    job = lc.enqueue(sessions, RetrainRequest("ease"))
    claimed = lc.claim_next(sessions, "w", 60)
    fence = repo.JobFence(job.id, "w", claimed.attempts)
    with lc.JobLease(sessions, fence, 60, threading.Event()) as lease:
        lease.report({"epoch": 1, "epochs": 3}, force=True)
        assert lc.cancel_job(sessions, job.id).status == "cancelled"
        with pytest.raises(lc.JobAborted, match="cancelled") as aborted:
            lease.report({"epoch": 2, "epochs": 3}, force=True)
        assert aborted.value.kind == "cancelled"
        assert not lease.finish("succeeded", result_version="1")
    row = lc.get_job(sessions, job.id)
    assert (row.status, row.result_version, row.progress) == (
        "cancelled",
        None,
        {"epoch": 1, "epochs": 3, "phase": "cancelled"},
    )
    with pytest.raises(lc.JobConflict, match="already cancelled"):
        lc.cancel_job(sessions, job.id)


#: What a tune job's lead reports while it searches: a window and a countdown.
SEARCHING = {"phase": "searching", "metric": "ndcg@40", "search_until": "x", "seconds_left": 9.5}


def _searching(sessions: sessionmaker[Session], lease: lc.JobLease) -> None:
    lease.report(dict(SEARCHING), force=True)
    with session_scope(sessions) as session:
        until = lc.utcnow() + timedelta(minutes=5)
        assert repo.set_search_window(session, lease.fence, lc.utcnow(), until)


@pytest.mark.parametrize("end", ["succeeded", "failed", "cancelled"])
def test_an_ended_job_keeps_no_countdown_and_says_how_it_ended(
    end: str, sessions: sessionmaker[Session]
) -> None:
    job = lc.enqueue(sessions, RetrainRequest("ease"))
    claimed = lc.claim_next(sessions, "w", 60)
    fence = repo.JobFence(job.id, "w", claimed.attempts)
    with lc.JobLease(sessions, fence, 60, threading.Event()) as lease:
        _searching(sessions, lease)
        if end == "cancelled":
            lc.cancel_job(sessions, job.id)
        else:
            assert lease.finish(end)  # type: ignore[arg-type]
    row = lc.get_job(sessions, job.id)
    assert (row.status, row.search_until) == (end, None)
    assert row.progress == {"phase": end, "metric": "ndcg@40"}


def test_a_job_never_started_that_is_cancelled_says_so(sessions: sessionmaker[Session]) -> None:
    job = lc.enqueue(sessions, RetrainRequest("ease"))
    assert lc.cancel_job(sessions, job.id).progress == {"phase": "cancelled"}


def _eventually(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Wait for the lease's background thread to act (it renews every lease_s / 3)."""
    done = threading.Event()
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the renewal thread never acted"
        done.wait(0.01)


def _lease_expiry(sessions: sessionmaker[Session], job_id: int) -> datetime:
    expires = lc.get_job(sessions, job_id).lease_expires_at
    assert expires is not None, "a running job has a lease"
    return repo.as_utc(expires)


def _database_now(sessions: sessionmaker[Session]) -> datetime:
    with session_scope(sessions) as session:
        return repo.database_time(session)


def test_background_renewal_keeps_a_short_lease_alive(sessions: sessionmaker[Session]) -> None:
    job = lc.enqueue(sessions, RetrainRequest("ease"))
    claimed = lc.claim_next(sessions, "w", 0.6)
    first_lease = _lease_expiry(sessions, job.id)
    fence = repo.JobFence(job.id, "w", claimed.attempts)
    with lc.JobLease(sessions, fence, 0.6, threading.Event()) as lease:
        # Past the first lease by the database's clock: only renewals keep the job ours.
        _eventually(lambda: _database_now(sessions) > first_lease)
        _eventually(lambda: _lease_expiry(sessions, job.id) > _database_now(sessions))
        assert lc.claim_next(sessions, "thief", 0.6) is None
        lease.check()
        assert lease.finish("succeeded")
    assert lc.get_job(sessions, job.id).worker_id == "w"


def test_lost_lease_is_noticed_by_the_renewal_thread(sessions: sessionmaker[Session]) -> None:
    job = lc.enqueue(sessions, RetrainRequest("ease"))
    claimed = lc.claim_next(sessions, "w", 0.3)
    fence = repo.JobFence(job.id, "w", claimed.attempts)
    with lc.JobLease(sessions, fence, 0.3, threading.Event()) as lease:
        # The worker stalled past its lease and another took the job: in one transaction,
        # so no renewal lands between the expiry and the takeover.
        with session_scope(sessions) as session:
            session.execute(
                update(RetrainJob)
                .where(RetrainJob.id == job.id)
                .values(lease_expires_at=database_now(-60.0))
            )
            assert repo.claim_job(session, "thief", 60) is not None

        def noticed() -> bool:
            try:
                lease.check()
            except lc.JobAborted:
                return True
            return False

        _eventually(noticed)
        with pytest.raises(lc.JobAborted, match="lost the lease") as aborted:
            lease.check()
        assert aborted.value.kind == "lost"


def test_a_failed_lease_renewal_is_logged_in_one_line(
    sessions: sessionmaker[Session],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ "lease renewal failed" printed SQLAlchemy's whole text (the SQL, a background
    link) over several lines, where every other line of a worker gives the driver's one."""
    job = lc.enqueue(sessions, RetrainRequest("ease"))
    claimed = lc.claim_next(sessions, "w", 0.3)
    renew = repo.renew_job_lease
    tries: list[float] = []
    retried = threading.Event()

    def flaky(session: Session, fence: repo.JobFence, lease_s: float) -> bool:
        tries.append(lease_s)
        if len(tries) == 1:
            raise unreachable()
        retried.set()  # the first failure was logged before this second try
        return renew(session, fence, lease_s)

    monkeypatch.setattr(repo, "renew_job_lease", flaky)
    fence = repo.JobFence(job.id, "w", claimed.attempts)
    lease = lc.JobLease(sessions, fence, 0.3, threading.Event())
    expires = repo.log_time(lease.expires_about)  # the claim's: no renewal before the failure
    with caplog.at_level(logging.INFO, logger=lc.__name__), lease:
        assert retried.wait(10.0)
    [line] = warnings_with(caplog, "lease renewal failed")
    assert line == (
        f"job {job.id}: lease renewal failed (1 in a row; the lease runs out about "
        f"{expires} unless renewed): OperationalError: {REFUSED}"
    )
    assert f"job {job.id}: lease renewed after 1 failed renewal(s)" in caplog.messages
    assert multi_line_records(caplog) == []


def test_a_failure_past_the_time_limit_not_recorded_is_logged_in_one_line(
    sessions: sessionmaker[Session],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(lc, "OUTCOME_RETRY_DELAYS_S", ())

    def away(*_args: object, **_kwargs: object) -> bool:
        raise unreachable()

    monkeypatch.setattr(repo, "finish_job", away)
    job = lc.enqueue(sessions, RetrainRequest("ease"))
    claimed = lc.claim_next(sessions, "w", 60)
    fence = repo.JobFence(job.id, "w", claimed.attempts)
    ticks = iter([0.0, 0.0, 100.0])
    lease = lc.JobLease(
        sessions,
        fence,
        60,
        threading.Event(),
        max_run_s=10.0,
        last_attempt=True,
        monotonic=lambda: next(ticks),
    )
    with (
        caplog.at_level(logging.WARNING, logger=lc.__name__),
        lease,
        pytest.raises(lc.JobAborted, match="limit"),
    ):
        lease.check()
    assert warnings_with(caplog, "failure not recorded") == [
        f"job {job.id}: failure not recorded: OperationalError: {REFUSED}"
    ]
    assert multi_line_records(caplog) == []


def test_stopping_worker_hands_the_job_back(sessions: sessionmaker[Session]) -> None:
    job = lc.enqueue(sessions, RetrainRequest("ease"))
    claimed = lc.claim_next(sessions, "w", 60)
    stop = threading.Event()
    with lc.JobLease(sessions, repo.JobFence(job.id, "w", claimed.attempts), 60, stop) as lease:
        stop.set()
        with pytest.raises(lc.JobAborted) as aborted:
            lease.check()
        assert aborted.value.kind == "stopping"
        assert lease.release()
    row = lc.get_job(sessions, job.id)
    assert (row.status, row.worker_id, row.lease_expires_at) == ("queued", None, None)
    assert row.attempts == 0  # a graceful hand-back gives its attempt back
    assert lc.claim_next(sessions, "next", 60).attempts == 1


def test_a_job_handed_back_reads_queued_in_its_progress_too(
    sessions: sessionmaker[Session],
) -> None:
    """SIGTERM mid-epoch: the row said "queued" while its progress still said "training",
    epoch 4 of 12 (a tune job's a frozen countdown), on the API and the dashboard alike.
    What a next attempt reads back (a tune job's cutoff and window) stays."""
    job = lc.enqueue(sessions, RetrainRequest("ease"))
    claimed = lc.claim_next(sessions, "w", 60)
    stop = threading.Event()
    with lc.JobLease(sessions, repo.JobFence(job.id, "w", claimed.attempts), 60, stop) as lease:
        at_epoch = {"phase": "training", "epoch": 4, "epochs": 12, "cutoff": "2026-01-01T12:00:00Z"}
        lease.report({**at_epoch, "search_until": "2026-01-01T13:00:00Z", "seconds_left": 9.5})
        stop.set()
        with pytest.raises(lc.JobAborted):
            lease.check()
        assert lease.release()
    row = lc.get_job(sessions, job.id)
    assert row.status == "queued"
    assert row.progress == {
        **at_epoch,
        "phase": "queued",
        "search_until": "2026-01-01T13:00:00Z",
    }


def test_rolling_restarts_do_not_use_up_a_jobs_attempts(sessions: sessionmaker[Session]) -> None:
    """Three workers stopped (SIGTERM) in a row, then one killed: the job is still retried."""
    job = lc.enqueue(sessions, RetrainRequest("ease"), now=T0)
    for restart in range(lc.DEFAULT_MAX_ATTEMPTS):
        now = T0 + timedelta(seconds=10 * restart)
        claimed = _claim(sessions, f"w{restart}")
        assert claimed.attempts == 1
        with session_scope(sessions) as session:
            fence = repo.JobFence(job.id, f"w{restart}", claimed.attempts)
            assert repo.release_job(session, fence, now, "stopped: shutting down")
    assert _claim(sessions, "killed", lease_s=5).attempts == 1
    expire_leases(sessions)
    with session_scope(sessions) as session:
        assert repo.fail_exhausted_jobs(session, "gave up") == []
    taken = _claim(sessions, "next")
    assert (taken.id, taken.status, taken.attempts) == (job.id, "running", 2)


def test_job_log_keeps_a_bounded_tail() -> None:
    log = lc.JobLog(job_id=1, lines=3)
    for i in range(5):
        log.add(f"line {i}")
    lines = log.text().splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == ["line 2", "line 3", "line 4"]


def test_job_log_keeps_the_end_of_earlier_attempts_tail() -> None:
    """A takeover keeps why the attempt before died, however much the new one logs."""
    earlier = "\n".join(f"12:00:0{i} attempt 1 line {i}" for i in range(5))
    log = lc.JobLog(job_id=1, lines=3, earlier=earlier, earlier_lines=2)
    for i in range(5):
        log.add(f"line {i}")
    lines = [line.split(" ", 1)[1] for line in log.text().splitlines()]
    assert lines == ["attempt 1 line 3", "attempt 1 line 4", "line 2", "line 3", "line 4"]
    assert lc.JobLog(job_id=1, earlier="").text() == ""


def _unstamped(text: str) -> list[str]:
    return [re.sub(r"^\d\d:\d\d:\d\dZ ", "", line) for line in text.splitlines()]


def test_job_log_keeps_an_attempts_pinned_opening_lines() -> None:
    """A long refit scrolled the attempt's "claimed by" line (and a takeover's why) out of
    the tail: pinned lines stay ahead of it, and a gap says lines were left out."""
    earlier = "12:00:00 attempt 1 line"
    log = lc.JobLog(job_id=1, lines=3, earlier=earlier)
    log.add("taking over from attempt 1", pin=True)
    log.add("claimed by w (attempt 2 of 3)", pin=True)
    for i in range(5):
        log.add(f"line {i}")
    assert _unstamped(log.text()) == [
        "12:00:00 attempt 1 line",
        "taking over from attempt 1",
        "claimed by w (attempt 2 of 3)",
        "... 2 lines of this attempt not kept ...",
        "line 2",
        "line 3",
        "line 4",
    ]
    short = lc.JobLog(job_id=1, lines=3)
    short.add("claimed", pin=True)
    short.add("line 0")
    assert _unstamped(short.text()) == ["claimed", "line 0"]  # nothing left out, no gap


def test_a_claim_says_which_expired_attempt_it_took_over(sessions: sessionmaker[Session]) -> None:
    job = lc.enqueue(sessions, RetrainRequest("ease"), now=T0)
    first = lc.claim_taking_over(sessions, "dead", 5)
    assert first is not None and first.taken_over is None  # a queued job: nothing taken over
    expire_leases(sessions)
    expired = _lease_expiry(sessions, job.id)
    second = lc.claim_taking_over(sessions, "other", 5)
    assert second is not None and (second.job.id, second.job.attempts) == (job.id, 2)
    assert second.taken_over == repo.Takeover("dead", 1, expired)
    assert "taking over from attempt 1 (worker dead): its lease expired at " in (
        lc.takeover_line(second.taken_over)
    )


# --------------------------------------------------------------------------- schedule


def test_periodic_schedule_enqueues_once_per_period(sessions: sessionmaker[Session]) -> None:
    first = lc.schedule_periodic(sessions, "ease", 3600, now=T0)
    assert first is not None and (first.trigger, first.data, first.promote) == (
        "schedule",
        "log+base",
        "auto",
    )
    assert lc.schedule_periodic(sessions, "ease", 3600, now=T0 + timedelta(minutes=30)) is None
    # The next period, the first job still queued: it will read the log as it is when it
    # runs, so no twin is queued behind it.
    assert lc.schedule_periodic(sessions, "ease", 3600, now=T0 + timedelta(minutes=61)) is None
    assert [job.id for job in lc.list_jobs(sessions)] == [first.id]
    lc.cancel_job(sessions, first.id)
    again = lc.schedule_periodic(sessions, "ease", 3600, now=T0 + timedelta(minutes=62))
    assert again is not None and again.id != first.id


def test_a_skipped_period_is_logged_once_per_job_not_at_every_poll(
    sessions: sessionmaker[Session],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(lc, "_SKIPS_LOGGED", {})  # job ids repeat across test databases
    first = lc.schedule_periodic(sessions, "ease", 60, now=T0)
    assert first is not None
    with caplog.at_level(logging.INFO, logger=lc.__name__):
        for poll in range(5):  # a worker polls every 2 s while the job is queued
            later = T0 + timedelta(seconds=120 + 2 * poll)
            assert lc.schedule_periodic(sessions, "ease", 60, now=later) is None
    skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert skipped == [f"periodic retrain of ease skipped: job {first.id} is still queued"]


def test_periodic_schedule_race_inserts_one_row(sessions: sessionmaker[Session]) -> None:
    """Two workers that both saw no recent job: the slot's unique key keeps one insert."""
    key = f"schedule:ease:{int(T0.timestamp() // 3600)}"
    lc.enqueue(sessions, RetrainRequest("ease"), trigger="schedule", dedupe_key=key, now=T0)
    # The second worker's check ran before the first insert; its insert hits the key.
    with session_scope(sessions) as session:
        session.execute(
            repo.RetrainJob.__table__.update().values(created_at=T0 - timedelta(hours=2))
        )
    assert lc.schedule_periodic(sessions, "ease", 3600, now=T0) is None
    assert len(lc.list_jobs(sessions)) == 1


def test_what_a_job_did_is_written_on_its_ended_row_on_postgres(postgres_url: str) -> None:
    """The statements that keep a job's result once a cancel or the exhaustion sweep ended
    it (``record_cancelled_result``, ``note_failed_job_version``), on the real Postgres:
    only the attempt that was cancelled writes; a failed row is named once."""
    upgrade_database(postgres_url)
    engine = make_engine(postgres_url)
    sessions = make_sessionmaker(engine)
    try:
        cancelled = lc.enqueue(sessions, RetrainRequest("ease", {"l2": 11.0}), now=T0)
        with session_scope(sessions) as session:  # as claim_job leaves it (no other job taken)
            session.execute(
                update(RetrainJob)
                .where(RetrainJob.id == cancelled.id)
                .values(status="running", worker_id="w", attempts=1)
            )
        lc.cancel_job(sessions, cancelled.id)
        mine, other = repo.JobFence(cancelled.id, "w", 1), repo.JobFence(cancelled.id, "x", 1)
        with session_scope(sessions) as session:
            assert not repo.record_cancelled_result(session, other, T0, log_tail="", promoted=True)
            assert repo.record_cancelled_result(
                session, mine, T0, log_tail="kept", result_version="4", promoted=True
            )
        row = lc.get_job(sessions, cancelled.id)
        assert (row.status, row.result_version, row.promoted) == ("cancelled", "4", True)

        failed = lc.enqueue(sessions, RetrainRequest("ease", {"l2": 12.0}), now=T0)
        with session_scope(sessions) as session:
            assert not repo.note_failed_job_version(session, failed.id, "5", False, "e")  # queued
            repo.cancel_job(session, failed.id, T0)
            session.execute(
                update(RetrainJob).where(RetrainJob.id == failed.id).values(status="failed")
            )
            assert repo.note_failed_job_version(session, failed.id, "5", False, "kept")
            assert not repo.note_failed_job_version(session, failed.id, "6", True, "again")
        row = lc.get_job(sessions, failed.id)
        assert (row.status, row.result_version, row.promoted, row.error) == (
            "failed",
            "5",
            False,
            "kept",
        )
    finally:
        engine.dispose()
