"""Running one claimed job: data -> train -> gate -> save -> promote -> finish, and its failures."""

from __future__ import annotations

import errno
import logging
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

import app.retrain.runner as runner
from app import repository as repo
from app.core.db import session_scope
from app.db_models import RetrainJob
from app.repository import JobFence
from app.retrain import lifecycle as lc
from app.retrain.lifecycle import RetrainRequest
from app.retrain.runner import JobContext
from app.worker import Worker
from models_store import ModelStore
from tests.app.retrain.conftest import BAD_VAE, GOOD_VAE
from tests.db_faults import REFUSED, multi_line_records, unreachable, warnings_with
from tests.job_leases import expire_leases
from tests.manual_clock import ManualClock


def _versions_of_job(store: ModelStore, model: str, job_id: int) -> list[str]:
    return [m.version for m in store.list_versions(model) if m.training.get("job_id") == job_id]


def test_job_trains_on_base_and_log_and_promotes(
    job_context: JobContext,
    promote_base: Callable[..., str],
    log_new_users: Callable[..., list[str]],
    base_csv: Path,
) -> None:
    before = promote_base("ease")
    users = log_new_users(4)
    job = lc.enqueue(job_context.sessions, RetrainRequest("ease", data="log+base"))

    assert Worker(job_context).step() == "succeeded"

    row = lc.get_job(job_context.sessions, job.id)
    store = job_context.store
    assert (row.status, row.attempts, row.promoted, row.error) == ("succeeded", 1, True, None)
    assert store.alias_state("ease") == row.result_version != before
    manifest = store.manifest("ease", row.result_version)
    assert manifest.data.source == f"{base_csv}+log"
    assert manifest.training["job_id"] == job.id
    assert manifest.training["gate"] == row.gate
    assert row.gate["production_version"] == before and row.gate["promote"] is True
    assert row.gate["metric"] == "ndcg@10" and row.gate["candidate"] == manifest.metrics["ndcg@10"]
    assert set(users) <= set(store.load("ease", row.result_version).contents.user_ids)
    assert row.progress["phase"] == "succeeded" and row.progress["epochs"] == 1
    assert any("promoted ease version" in line for line in row.log_tail.splitlines())


def test_one_unreadable_version_of_the_model_does_not_fail_its_retrain_jobs(
    job_context: JobContext,
    promote_base: Callable[..., str],
    log_new_users: Callable[..., list[str]],
    tmp_path: Path,
) -> None:
    """A half-copied version folder (its manifest unreadable) failed every retrain of its
    model at the first step, the look-up of a version an earlier attempt saved."""
    before = promote_base("ease")
    log_new_users(2)
    broken = tmp_path / "store" / "ease" / "versions" / "7"
    broken.mkdir()
    (broken / "manifest.json").write_text("{not json")
    job = lc.enqueue(job_context.sessions, RetrainRequest("ease", data="log+base"))

    assert Worker(job_context).step() == "succeeded"
    row = lc.get_job(job_context.sessions, job.id)
    assert row.result_version not in (None, before, "7") and row.promoted is True


def test_worse_candidate_is_saved_but_not_promoted_under_auto(
    job_context: JobContext,
    promote_base: Callable[..., str],
    log_new_users: Callable[..., list[str]],
) -> None:
    production = promote_base("mult-vae", **GOOD_VAE)
    log_new_users(2)
    job = lc.enqueue(job_context.sessions, RetrainRequest("mult-vae", dict(BAD_VAE)))

    assert Worker(job_context).step() == "succeeded"

    row = lc.get_job(job_context.sessions, job.id)
    assert row.promoted is False and row.result_version is not None
    assert job_context.store.alias_state("mult-vae") == production
    gate = row.gate
    assert gate["promote"] is False and gate["candidate"] < gate["production"]
    assert "worse than production" in gate["reason"]
    assert row.progress["epoch"] == row.progress["epochs"] == 1


@pytest.mark.parametrize(("policy", "moved"), [("always", True), ("never", False)])
def test_promote_policy_always_and_never(
    policy: str,
    moved: bool,
    job_context: JobContext,
    promote_base: Callable[..., str],
    log_new_users: Callable[..., list[str]],
) -> None:
    production = promote_base("mult-vae", **GOOD_VAE)
    log_new_users(2)
    request = RetrainRequest("mult-vae", dict(BAD_VAE), promote=policy)  # type: ignore[arg-type]
    job = lc.enqueue(job_context.sessions, request)
    Worker(job_context).step()
    row = lc.get_job(job_context.sessions, job.id)
    assert row.promoted is moved
    assert (job_context.store.alias_state("mult-vae") == row.result_version) is moved
    assert (job_context.store.alias_state("mult-vae") == production) is not moved


def test_failing_job_records_the_error_and_the_worker_goes_on(
    job_context: JobContext,
) -> None:
    failing = lc.enqueue(job_context.sessions, RetrainRequest("ease", data="log"))  # empty log
    worker = Worker(job_context)
    assert worker.step() == "failed"
    row = lc.get_job(job_context.sessions, failing.id)
    assert row.status == "failed" and "no interactions" in row.error
    assert row.log_tail.splitlines()[-1].split(" ", 1)[1].startswith("failed: DataError")
    assert worker.step() is None  # nothing left


def test_a_job_cancelled_as_it_fails_ends_cancelled_not_failed(
    job_context: JobContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The failure could not be recorded (the cancel came first): the attempt is not
    "failed", which `worker --once` reports as a failed job (exit 2)."""
    job = lc.enqueue(job_context.sessions, RetrainRequest("ease", data="log"))

    def cancelled_then_broken(*args: object, **kwargs: object) -> None:
        lc.cancel_job(job_context.sessions, job.id)
        raise RuntimeError("broken")

    monkeypatch.setattr(runner, "export_interactions", cancelled_then_broken)
    assert Worker(job_context).step() == "cancelled"
    row = lc.get_job(job_context.sessions, job.id)
    assert (row.status, row.error) == ("cancelled", None)
    # The job's own log (API, dashboard) says so, not only the worker's.
    last = row.log_tail.splitlines()[-1].split(" ", 1)[1]
    assert last == "the failure was not recorded: the job was cancelled", row.log_tail


def test_cancelled_before_it_starts_writes_no_version(
    job_context: JobContext,
    promote_base: Callable[..., str],
    log_new_users: Callable[..., list[str]],
) -> None:
    promote_base("ease")
    log_new_users(2)
    job = lc.enqueue(job_context.sessions, RetrainRequest("ease"))
    claimed = lc.claim_next(job_context.sessions, "w", 60)
    lc.cancel_job(job_context.sessions, job.id)
    fence = JobFence(job.id, "w", claimed.attempts)
    with lc.JobLease(job_context.sessions, fence, 60, Worker(job_context).stop) as lease:
        assert runner.run_claimed_job(claimed, lease, job_context) == "cancelled"
    assert _versions_of_job(job_context.store, "ease", job.id) == []
    assert lc.get_job(job_context.sessions, job.id).status == "cancelled"


def test_a_cancelled_job_says_in_its_own_log_that_it_stopped(
    job_context: JobContext,
    promote_base: Callable[..., str],
    log_new_users: Callable[..., list[str]],
) -> None:
    """ "stopped: the job was cancelled" reached only the worker's log: the row's log tail,
    which the API and the dashboard show, ended at the last line written while running."""
    promote_base("ease")
    log_new_users(2)
    job = lc.enqueue(job_context.sessions, RetrainRequest("ease"))
    claimed = lc.claim_next(job_context.sessions, "w", 60)
    fence = JobFence(job.id, "w", claimed.attempts)
    with lc.JobLease(job_context.sessions, fence, 60, Worker(job_context).stop) as lease:
        lease.report({"phase": "loading"}, force=True)  # a line or two while running
        lc.cancel_job(job_context.sessions, job.id)
        assert runner.run_claimed_job(claimed, lease, job_context) == "cancelled"
    row = lc.get_job(job_context.sessions, job.id)
    lines = [line.split(" ", 1)[1] for line in row.log_tail.splitlines()]
    assert lines[0].startswith("claimed by w (attempt 1 of ")
    assert lines[-1] == "stopped: the job was cancelled", row.log_tail
    assert (row.status, row.progress["phase"]) == ("cancelled", "cancelled")


def test_a_cancel_that_lands_after_the_promotion_still_shows_what_the_job_did(
    job_context: JobContext,
    promote_base: Callable[..., str],
    log_new_users: Callable[..., list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Cancel racing with completion: the job had already moved production when the
    cancel landed; the cancelled row must say so, not read as "nothing happened"."""
    promote_base("ease")
    log_new_users(2)
    job = lc.enqueue(job_context.sessions, RetrainRequest("ease", promote="always"))
    store = job_context.store
    promote = store.promote

    def promote_then_cancelled(*args: Any, **kwargs: Any) -> Any:
        manifest = promote(*args, **kwargs)
        lc.cancel_job(job_context.sessions, job.id)
        return manifest

    monkeypatch.setattr(store, "promote", promote_then_cancelled)
    assert Worker(job_context).step() == "cancelled"
    row = lc.get_job(job_context.sessions, job.id)
    assert row.status == "cancelled" and row.progress["phase"] == "cancelled"
    assert (row.result_version, row.promoted) == (store.alias_state("ease"), True)
    assert row.gate is not None and row.gate["promote"] is True
    assert "cancelled after version" in (row.log_tail or "")


def test_a_cancel_that_lands_after_the_save_names_the_version_it_left(
    job_context: JobContext,
    promote_base: Callable[..., str],
    log_new_users: Callable[..., list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Cancelled between its save and its promotion: nothing is promoted, and the
    cancelled row names the version the job left in the store."""
    production = promote_base("ease")
    log_new_users(2)
    job = lc.enqueue(job_context.sessions, RetrainRequest("ease", promote="always"))
    save = runner._save

    def save_then_cancelled(*args: Any, **kwargs: Any) -> Any:
        manifest = save(*args, **kwargs)
        lc.cancel_job(job_context.sessions, job.id)
        return manifest

    monkeypatch.setattr(runner, "_save", save_then_cancelled)
    assert Worker(job_context).step() == "cancelled"
    row = lc.get_job(job_context.sessions, job.id)
    saved = _versions_of_job(job_context.store, "ease", job.id)
    assert (row.status, row.result_version, row.promoted) == ("cancelled", saved[0], False)
    assert job_context.store.alias_state("ease") == production


class _Crash(BaseException):
    """Stands in for SIGKILL: nothing after it runs, nothing is cleaned up."""


def test_attempt_after_a_crash_finishes_the_saved_version_instead_of_training_again(
    job_context: JobContext,
    promote_base: Callable[..., str],
    log_new_users: Callable[..., list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    promote_base("ease")
    log_new_users(2)
    job = lc.enqueue(job_context.sessions, RetrainRequest("ease"))
    promote = runner.promote_if

    def crash(*args: object, **kwargs: object) -> None:
        raise _Crash

    monkeypatch.setattr(runner, "promote_if", crash)
    clock = ManualClock(lc.utcnow())
    with pytest.raises(_Crash):
        Worker(job_context, clock=clock).step()
    saved = _versions_of_job(job_context.store, "ease", job.id)
    assert len(saved) == 1 and lc.get_job(job_context.sessions, job.id).status == "running"
    assert Worker(job_context, clock=clock).step() is None  # its lease still runs

    monkeypatch.setattr(runner, "promote_if", promote)
    expire_leases(job_context.sessions)  # the lease expires
    assert Worker(job_context, clock=clock).step() == "succeeded"
    row = lc.get_job(job_context.sessions, job.id)
    assert (row.attempts, row.result_version, row.promoted) == (2, saved[0], True)
    assert _versions_of_job(job_context.store, "ease", job.id) == saved  # trained once
    assert job_context.store.alias_state("ease") == saved[0]
    # The tail still shows how the first attempt got as far as it did.
    tail = [line.split(" ", 1)[1] for line in (row.log_tail or "").splitlines()]
    first = next(i for i, line in enumerate(tail) if "(attempt 1 of 3)" in line)
    second = next(i for i, line in enumerate(tail) if "(attempt 2 of 3)" in line)
    assert first < second and any(line.startswith("gate: ") for line in tail[first:second])
    # The finished job's progress is the saved version's training, as if one attempt ran.
    trained = job_context.store.load("ease", saved[0]).manifest.training
    assert row.progress["phase"] == "succeeded"
    assert row.progress["epoch"] == row.progress["epochs"] == trained["curve"][-1]["epoch"]
    assert row.progress["seconds"] == trained["curve"][-1]["seconds"]


def test_a_job_whose_every_attempt_died_after_saving_is_failed_with_its_version(
    job_context: JobContext,
    promote_base: Callable[..., str],
    log_new_users: Callable[..., list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Killed after its version was saved and promoted, on every attempt: the sweep fails
    the job, and the failed row names the version it left in production."""
    promote_base("ease")
    log_new_users(2)
    job = lc.enqueue(job_context.sessions, RetrainRequest("ease", promote="always"))
    record = runner.record_success

    def killed_before_recording(*args: object, **kwargs: object) -> None:
        raise _Crash

    monkeypatch.setattr(runner, "record_success", killed_before_recording)
    clock = ManualClock(lc.utcnow())
    for _ in range(lc.DEFAULT_MAX_ATTEMPTS):
        with pytest.raises(_Crash):
            Worker(job_context, clock=clock).step()
        expire_leases(job_context.sessions)
    monkeypatch.setattr(runner, "record_success", record)
    assert Worker(job_context, clock=clock).step() is None  # the sweep, nothing to claim

    row = lc.get_job(job_context.sessions, job.id)
    saved = _versions_of_job(job_context.store, "ease", job.id)
    assert len(saved) == 1 and job_context.store.alias_state("ease") == saved[0]
    assert (row.status, row.result_version, row.promoted) == ("failed", saved[0], True)
    assert row.error is not None and f"version {saved[0]}" in row.error


def test_a_takeover_does_not_move_production_back_over_a_later_promotion(
    job_context: JobContext,
    promote_base: Callable[..., str],
    log_new_users: Callable[..., list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The gate said "promote" against the production of its time; the attempt that
    finishes the version a lease period later must not undo a promotion made meanwhile."""
    promote_base("ease")
    log_new_users(2)
    job = lc.enqueue(job_context.sessions, RetrainRequest("ease", promote="always"))
    promote = runner.promote_if

    def crash(*args: object, **kwargs: object) -> None:
        raise _Crash

    monkeypatch.setattr(runner, "promote_if", crash)
    clock = ManualClock(lc.utcnow())
    with pytest.raises(_Crash):
        Worker(job_context, clock=clock).step()
    saved = _versions_of_job(job_context.store, "ease", job.id)
    operators = promote_base("ease")  # promoted by hand while the job was in limbo
    monkeypatch.setattr(runner, "promote_if", promote)
    expire_leases(job_context.sessions)
    assert Worker(job_context, clock=clock).step() == "succeeded"
    row = lc.get_job(job_context.sessions, job.id)
    assert (row.result_version, row.promoted) == (saved[0], False)
    assert job_context.store.alias_state("ease") == operators
    assert "production moved since version" in (row.log_tail or "")


def test_a_promotion_made_while_the_job_saves_is_not_undone_by_the_job(
    job_context: JobContext,
    promote_base: Callable[..., str],
    log_new_users: Callable[..., list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The gate compared against the production of its time; an operator who promotes
    another version after that (here: while the job saves) keeps production there."""
    promote_base("ease")
    log_new_users(2)
    job = lc.enqueue(job_context.sessions, RetrainRequest("ease", promote="always"))
    save = runner._save
    operators: list[str] = []

    def save_then_operator_promotes(*args: Any, **kwargs: Any) -> Any:
        manifest = save(*args, **kwargs)
        operators.append(promote_base("ease"))
        return manifest

    monkeypatch.setattr(runner, "_save", save_then_operator_promotes)
    assert Worker(job_context).step() == "succeeded"
    row = lc.get_job(job_context.sessions, job.id)
    assert row.result_version is not None and row.promoted is False
    assert job_context.store.alias_state("ease") == operators[0] != row.result_version
    assert "production moved since version" in (row.log_tail or "")


def test_a_store_that_refuses_the_promotion_leaves_the_saved_version_named(
    job_context: JobContext,
    promote_base: Callable[..., str],
    log_new_users: Callable[..., list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The version is saved, then the alias cannot be written (a read-only remount, a full
    disk, an ``aliases/`` folder another user made): the OS's error failed the job with
    no ``result_version``, so the row hid the version the job had saved. It is a failed
    promotion, as the store's own errors are: the job names its version, unpromoted."""
    before = promote_base("ease")
    log_new_users(2)
    job = lc.enqueue(job_context.sessions, RetrainRequest("ease", promote="always"))

    def read_only(key: str, _data: bytes) -> None:
        raise OSError(errno.EROFS, "Read-only file system", key)

    monkeypatch.setattr(job_context.store.backend, "replace", read_only)
    assert Worker(job_context).step() == "succeeded"
    row = lc.get_job(job_context.sessions, job.id)
    assert row.result_version == _versions_of_job(job_context.store, "ease", job.id)[0]
    assert row.promoted is False
    assert row.error is not None and row.error.startswith("promotion failed: ")
    assert "Read-only file system" in row.error
    assert job_context.store.alias_state("ease") == before


# --------------------------------------------------------------------------- database errors


def _refuse_success(sessions: sessionmaker[Session], refuse: bool = True) -> None:
    """A trigger that fails every write of ``status = 'succeeded'`` (or drop it)."""
    with session_scope(sessions) as session:
        if refuse:
            session.execute(
                text(
                    "CREATE TRIGGER refuse_success BEFORE UPDATE OF status ON retrain_jobs "
                    "WHEN NEW.status = 'succeeded' BEGIN SELECT RAISE(ABORT, 'refusing success'); "
                    "END"
                )
            )
        else:
            session.execute(text("DROP TRIGGER refuse_success"))


@pytest.mark.parametrize("data", ["log", "log+base"])
def test_a_database_error_reading_the_log_interrupts_the_job_not_fails_it(
    job_context: JobContext,
    promote_base: Callable[..., str],
    log_new_users: Callable[..., list[str]],
    monkeypatch: pytest.MonkeyPatch,
    data: str,
) -> None:
    """The log reader turns a database error into a DataError: it failed a ``log`` job for
    good, and a ``log+base`` one went on to train on the base data alone, the log dropped."""
    import training.data.log_reader as log_reader

    def unreachable(*args: object, **kwargs: object) -> None:
        raise OperationalError("SELECT", {}, Exception("server closed the connection"))

    production = promote_base("ease")
    log_new_users(2)
    job = lc.enqueue(job_context.sessions, RetrainRequest("ease", data=data))
    monkeypatch.setattr(log_reader, "_read", unreachable)

    assert Worker(job_context).step() == "interrupted"

    row = lc.get_job(job_context.sessions, job.id)
    assert (row.status, row.error, row.attempts) == ("running", None, 1)
    assert _versions_of_job(job_context.store, "ease", job.id) == []
    assert job_context.store.alias_state("ease") == production
    assert "server closed the connection" in (row.log_tail or "")


def test_outcome_the_database_refuses_is_left_to_the_next_attempt_not_failed(
    job_context: JobContext,
    promote_base: Callable[..., str],
    log_new_users: Callable[..., list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The version is saved and promoted, then writing "succeeded" fails (as when a
    Postgres trigger refused it): the job is not failed, and the next attempt, once the
    lease has expired, finishes the saved version instead of training another."""
    monkeypatch.setattr(lc, "OUTCOME_RETRY_DELAYS_S", (0.0, 0.0), raising=False)
    promote_base("ease")
    log_new_users(2)
    job = lc.enqueue(job_context.sessions, RetrainRequest("ease"))
    _refuse_success(job_context.sessions)
    clock = ManualClock(lc.utcnow())

    assert Worker(job_context, clock=clock).step() == "interrupted"

    row = lc.get_job(job_context.sessions, job.id)
    saved = _versions_of_job(job_context.store, "ease", job.id)
    assert (row.status, row.error, row.result_version) == ("running", None, None)
    assert len(saved) == 1 and job_context.store.alias_state("ease") == saved[0]
    tail = row.log_tail or ""
    assert "refusing success" in tail and "next attempt" in tail
    assert "[SQL" not in tail and "UPDATE" not in tail  # one line, no statement

    _refuse_success(job_context.sessions, refuse=False)
    assert Worker(job_context, clock=clock).step() is None  # its lease still runs
    expire_leases(job_context.sessions)
    assert Worker(job_context, clock=clock).step() == "succeeded"
    row = lc.get_job(job_context.sessions, job.id)
    assert (row.status, row.attempts, row.result_version, row.promoted, row.error) == (
        "succeeded",
        2,
        saved[0],
        True,
        None,
    )
    assert _versions_of_job(job_context.store, "ease", job.id) == saved  # trained once


def test_outcome_write_is_retried_after_a_transient_database_error(
    job_context: JobContext,
    log_new_users: Callable[..., list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(lc, "OUTCOME_RETRY_DELAYS_S", (0.0, 0.0), raising=False)
    log_new_users(2)
    job = lc.enqueue(job_context.sessions, RetrainRequest("popularity", data="log"))
    finish = repo.finish_job
    errors = iter([OperationalError("UPDATE retrain_jobs SET ...", {}, Exception("reset"))])

    def flaky(*args: Any, **kwargs: Any) -> bool:
        for error in errors:
            raise error
        return finish(*args, **kwargs)

    monkeypatch.setattr(repo, "finish_job", flaky)
    assert Worker(job_context).step() == "succeeded"
    row = lc.get_job(job_context.sessions, job.id)
    assert (row.status, row.attempts, row.error) == ("succeeded", 1, None)
    assert "OperationalError: reset" in (row.log_tail or "")


def test_outcome_written_before_its_connection_failed_counts_as_recorded(
    job_context: JobContext,
    log_new_users: Callable[..., list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The commit landed but its answer was lost: the retry finds the job already
    finished by this attempt, which is the outcome it meant to write."""
    monkeypatch.setattr(lc, "OUTCOME_RETRY_DELAYS_S", (0.0,), raising=False)
    log_new_users(2)
    job = lc.enqueue(job_context.sessions, RetrainRequest("popularity", data="log"))
    finish = repo.finish_job
    calls = []

    def commit_then_fail(session: Session, *args: Any, **kwargs: Any) -> bool:
        calls.append(kwargs["status"])
        if len(calls) > 1:
            return finish(session, *args, **kwargs)
        with session_scope(job_context.sessions) as own:
            finish(own, *args, **kwargs)
        raise OperationalError("COMMIT", {}, Exception("connection lost"))

    monkeypatch.setattr(repo, "finish_job", commit_then_fail)
    assert Worker(job_context).step() == "succeeded"
    assert calls == ["succeeded", "succeeded"]
    assert lc.get_job(job_context.sessions, job.id).status == "succeeded"


# --------------------------------------------------------------------------- stopping worker


def _stop_in_training(worker: Worker) -> Callable[..., Any]:
    """A ``_train_and_save`` that meets SIGTERM at its first epoch: the worker is asked to
    stop, and the epoch's ``check()`` says so."""

    def train(_job: object, lease: lc.JobLease, _ctx: object) -> Any:
        worker.stop.set()
        lease.check()
        raise AssertionError("check() raises once the worker is stopping")

    return train


def test_a_job_the_stopping_worker_cannot_hand_back_is_left_to_its_lease_and_says_so(
    job_context: JobContext,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SIGTERM while Postgres is away: ``release_job`` raised inside the stop handling, the
    worker logged "the job goes back to the queue" (false: it kept its lease) and SQLAlchemy's
    multi-line text. It tries a few times, then says what happens instead, in one line."""
    monkeypatch.setattr(lc, "HAND_BACK_RETRY_DELAYS_S", (0.0, 0.0))
    tries: list[int] = []

    def away(*_args: object) -> bool:
        tries.append(1)
        raise unreachable()

    monkeypatch.setattr(repo, "release_job", away)
    job = lc.enqueue(job_context.sessions, RetrainRequest("ease"))
    worker = Worker(job_context, worker_id="w")
    monkeypatch.setattr(runner, "_train_and_save", _stop_in_training(worker))
    outcomes: list[str] = []
    with caplog.at_level(logging.INFO, logger="app"):
        worker.run(outcomes=outcomes)  # polling: it ends because it was stopped

    assert (outcomes, len(tries)) == (["interrupted"], 3)  # the first try and two more
    row = lc.get_job(job_context.sessions, job.id)
    assert (row.status, row.worker_id, row.attempts) == ("running", "w", 1)
    messages = [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if "back to the queue" in m or "database error" in m]
    [line] = warnings_with(caplog, "could not hand the job back")
    assert re.fullmatch(
        rf"job {job.id}: could not hand the job back \(database unreachable: "
        rf"OperationalError: {re.escape(REFUSED)}\); another worker takes it over when its "
        r"lease expires, at about \d\d:\d\d:\d\dZ, as attempt 2 of 3",
        line,
    ), line
    assert [r for r in caplog.records if r.exc_info] == []
    assert multi_line_records(caplog) == []


def test_a_hand_back_the_database_does_not_answer_does_not_hold_up_the_stop(
    job_context: JobContext,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A black-holed connection can block a query for minutes; the hand-back is given up
    after ``HAND_BACK_BUDGET_S``, so a stopping worker exits within its grace period."""
    monkeypatch.setattr(lc, "HAND_BACK_BUDGET_S", 0.05)
    answer = threading.Event()

    def hung(*_args: object) -> bool:
        answer.wait(30.0)  # the test lets it go once the worker gave up on it
        raise unreachable()

    monkeypatch.setattr(repo, "release_job", hung)
    job = lc.enqueue(job_context.sessions, RetrainRequest("ease"))
    with session_scope(job_context.sessions) as session:  # its last attempt, below
        session.execute(update(RetrainJob).where(RetrainJob.id == job.id).values(max_attempts=1))
    claimed = lc.claim_next(job_context.sessions, "w", 60)
    stop = threading.Event()
    fence = JobFence(job.id, "w", claimed.attempts)
    with (
        caplog.at_level(logging.INFO, logger="app"),
        lc.JobLease(job_context.sessions, fence, 60, stop, last_attempt=True) as lease,
    ):
        stop.set()
        try:
            assert runner.job_outcome(claimed, lease, lambda: _checked(lease)) == "interrupted"
        finally:
            answer.set()
    [line] = warnings_with(caplog, "could not hand the job back")
    assert re.fullmatch(
        rf"job {job.id}: could not hand the job back \(no answer from the database within "
        r"0\.05 s\); its lease expires, at about \d\d:\d\d:\d\dZ, and the job is failed "
        r"then: it was its last attempt \(1 of 1\)",
        line,
    ), line


def _checked(lease: lc.JobLease) -> str:
    lease.check()
    return "succeeded"


def test_a_job_handed_back_says_so_in_its_log(
    job_context: JobContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The line that the job went back to the queue is written with the hand-back itself,
    in its transaction, so the row and the worker's log say it only once it is true."""
    job = lc.enqueue(job_context.sessions, RetrainRequest("ease"))
    worker = Worker(job_context, worker_id="w")
    monkeypatch.setattr(runner, "_train_and_save", _stop_in_training(worker))
    assert worker.step() == "stopping"
    row = lc.get_job(job_context.sessions, job.id)
    assert (row.status, row.worker_id, row.attempts) == ("queued", None, 0)
    lines = [line.split(" ", 1)[1] for line in (row.log_tail or "").splitlines()]
    assert lines[-2:] == [
        "stopped: the worker is shutting down",
        "handed back to the queue: another worker runs it; this attempt (1 of 3) is not counted",
    ]


def test_a_takeover_says_in_the_jobs_log_why_the_attempt_before_stopped(
    job_context: JobContext, log_new_users: Callable[..., list[str]]
) -> None:
    """A worker killed (SIGKILL) mid-job: its log lines just ended, and the next attempt's
    began, nothing saying why. The worker that takes the expired lease over says it."""
    log_new_users(2)
    job = lc.enqueue(job_context.sessions, RetrainRequest("popularity", data="log"))
    dead = lc.claim_next(job_context.sessions, "dead", 60)
    fence = JobFence(job.id, "dead", dead.attempts)
    with session_scope(job_context.sessions) as session:  # its last words, then SIGKILL
        repo.write_job_progress(session, fence, lc.utcnow(), {}, "12:00:00Z claimed by dead")
    expire_leases(job_context.sessions)
    with session_scope(job_context.sessions) as session:
        expired = repo.as_utc(repo.get_job(session, job.id).lease_expires_at)

    assert Worker(job_context, worker_id="next").step() == "succeeded"
    row = lc.get_job(job_context.sessions, job.id)
    lines = [line.split(" ", 1)[1] for line in (row.log_tail or "").splitlines()]
    assert lines[0] == "claimed by dead"
    assert lines[1] == (
        f"taking over from attempt 1 (worker dead): its lease expired at "
        f"{expired.strftime('%H:%M:%SZ')} without a hand-back (the worker died or lost "
        "the database)"
    )
    assert lines[2].startswith("claimed by next (attempt 2 of 3)")
