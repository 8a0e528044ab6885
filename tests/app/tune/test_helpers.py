"""A worker with no queued job joins the open search of a tune job another worker leads,
within the job's time limit and while the job runs.

Here the lead is played by the test (claim, cutoff, study, window); the real two-process
run is ``test_two_workers.py``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import optuna
import pytest
from sqlalchemy.orm import Session, sessionmaker

from app import repository as repo
from app import worker as worker_module
from app.db_models import RetrainJob
from app.retrain import lifecycle as lc
from app.tune import runner as tune_runner
from app.tune.jobs import TuneRequest
from app.tune.runner import HelperWatch, help_tune_job
from app.tune.study import open_study_storage, study_name
from app.worker import Worker, job_time_limit_s
from tests.app.conftest import JobContextFactory
from tests.app.tune.tune_lead import lead_with_window
from tests.db_faults import REFUSED, multi_line_records, unreachable, warnings_with
from tests.manual_clock import ManualClock
from training.tuning import objective
from training.tuning.errors import TuningError

pytestmark = pytest.mark.integration


def test_an_idle_worker_runs_trials_of_the_open_search_and_leaves_the_job_alone(
    tune_db: str, make_job_context: JobContextFactory
) -> None:
    ctx = make_job_context(tune_db)
    request = TuneRequest(models=("popularity", "ease"), budget_minutes=0.5, trials=3)
    job_id = lead_with_window(ctx, tune_db, request)
    before = lc.get_job(ctx.sessions, job_id)

    worker = Worker(ctx, worker_id="helper")
    assert worker.step() == "helped"

    study = optuna.load_study(study_name=study_name(job_id), storage=open_study_storage(tune_db))
    assert [t.user_attrs["worker"] for t in study.trials] == ["helper"] * 3  # the trial cap
    # The enqueued first trials were run by whoever popped them: once each.
    firsts = [t.params["model"] for t in study.trials if "fixed_params" in t.system_attrs]
    assert firsts == ["popularity", "ease"]
    after = lc.get_job(ctx.sessions, job_id)
    assert (after.status, after.worker_id, after.progress) == ("running", "lead", before.progress)
    assert worker.step() is None  # it joins a search once


def test_a_helper_does_not_run_trials_of_a_cancelled_job(
    tune_db: str, make_job_context: JobContextFactory
) -> None:
    ctx = make_job_context(tune_db)
    job_id = lead_with_window(ctx, tune_db, TuneRequest(models=("ease",), budget_minutes=0.5))
    row = lc.get_job(ctx.sessions, job_id)
    lc.cancel_job(ctx.sessions, job_id)
    stop = threading.Event()
    assert help_tune_job(row, ctx, "helper", stop) == "helped"
    study = optuna.load_study(study_name=study_name(job_id), storage=open_study_storage(tune_db))
    assert [t.state.name for t in study.trials] == ["WAITING"]  # only the lead's enqueued one
    assert Worker(ctx, worker_id="other").step() is None  # nothing to join any more


def _eventually(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    """Poll until the helper's watch has acted (it looks every ``job_lease_s / 3``)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the helper's watch never acted"
        time.sleep(0.01)


def _hang_fits(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Every trial's fit hangs inside its first epoch (no epoch callback ever runs) until
    the event returned is set: a deadlocked fit."""
    release = threading.Event()

    def hang(*_args: object) -> None:
        release.wait(60)
        raise RuntimeError("woke up long after the helper gave the trial up")

    monkeypatch.setattr(objective, "validated_fit_by_activity", hang)
    return release


def _helpers_trials(study: optuna.Study) -> list[tuple[str, str | None]]:
    return [
        (t.state.name, t.user_attrs.get("error"))
        for t in study.get_trials(deepcopy=False)
        if t.user_attrs.get("worker") == "helper"
    ]


def test_a_helper_hung_in_a_fit_gives_its_trial_up_at_the_jobs_time_limit(
    tune_db: str, make_job_context: JobContextFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lead's attempt stops at ``GENREC_JOB_MAX_HOURS`` (``JobLease``); a helper ran
    trials outside the lease, so one hung inside an epoch held its trial "running" for
    ever (Optuna's heartbeat thread kept it alive), and the lead waited for it. Past the
    job's limit the helper fails that trial in the study and takes no other."""
    ctx = make_job_context(tune_db, job_lease_s=0.3)
    job_id = lead_with_window(
        ctx, tune_db, TuneRequest(models=("popularity", "ease"), budget_minutes=0.5)
    )
    before = lc.get_job(ctx.sessions, job_id)
    limit = job_time_limit_s(before, ctx.settings)
    study = optuna.load_study(study_name=study_name(job_id), storage=open_study_storage(tune_db))
    release = _hang_fits(monkeypatch)
    elapsed = ManualClock(0.0)
    worker = Worker(ctx, worker_id="helper", monotonic=elapsed)
    outcomes: list[str | None] = []
    thread = threading.Thread(target=lambda: outcomes.append(worker.step()))
    thread.start()
    try:
        _eventually(lambda: _helpers_trials(study) == [("RUNNING", None)])
        elapsed.advance(limit + 1.0)  # the fit never returns; only the helper's watch runs
        _eventually(lambda: _helpers_trials(study)[0][0] == "FAIL")
        ((_, error),) = _helpers_trials(study)
        assert error is not None and "ran past its" in error and "GENREC_JOB_MAX_HOURS" in error
    finally:
        release.set()
        thread.join(60)
    assert outcomes == ["help stopped"]
    assert [s for s, _ in _helpers_trials(study)] == ["FAIL"]  # it took no other trial
    after = lc.get_job(ctx.sessions, job_id)
    assert (after.status, after.worker_id, after.progress) == ("running", "lead", before.progress)


def test_a_helper_hung_in_a_fit_gives_its_trial_up_when_the_job_ends(
    tune_db: str, make_job_context: JobContextFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job that ended (here cancelled) while a helper's fit hung left that trial
    "running" in its study and the helper in it for good."""
    ctx = make_job_context(tune_db, job_lease_s=0.3)
    job_id = lead_with_window(
        ctx, tune_db, TuneRequest(models=("popularity", "ease"), budget_minutes=0.5)
    )
    row = lc.get_job(ctx.sessions, job_id)
    study = optuna.load_study(study_name=study_name(job_id), storage=open_study_storage(tune_db))
    release = _hang_fits(monkeypatch)
    outcomes: list[str] = []
    helper = threading.Thread(
        target=lambda: outcomes.append(help_tune_job(row, ctx, "helper", threading.Event()))
    )
    helper.start()
    try:
        _eventually(lambda: _helpers_trials(study) == [("RUNNING", None)])
        lc.cancel_job(ctx.sessions, job_id)
        _eventually(lambda: _helpers_trials(study)[0][0] == "FAIL")
        ((_, error),) = _helpers_trials(study)
        assert error is not None and "the job ended (cancelled)" in error
    finally:
        release.set()
        helper.join(60)
    assert outcomes == ["help stopped"]
    assert [s for s, _ in _helpers_trials(study)] == ["FAIL"]


def test_a_worker_bounds_its_help_by_the_jobs_time_limit(
    tune_db: str, make_job_context: JobContextFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The helper's limit is the lead's: ``job_time_limit_s`` of the job (its budget plus
    ``GENREC_JOB_MAX_HOURS``), on the worker's monotonic clock."""
    ctx = make_job_context(tune_db, job_max_hours=2.0)
    job_id = lead_with_window(ctx, tune_db, TuneRequest(models=("ease",), budget_minutes=0.5))
    seen: list[tuple[float | None, object]] = []

    def helped(*_args: object, max_run_s: float | None = None, monotonic: object = None) -> str:
        seen.append((max_run_s, monotonic))
        return "helped"

    monkeypatch.setattr(worker_module, "help_tune_job", helped)
    elapsed = ManualClock(0.0)
    assert Worker(ctx, worker_id="helper", monotonic=elapsed).step() == "helped"
    assert seen == [(2 * 3600.0 + 30.0, elapsed)]
    assert job_time_limit_s(lc.get_job(ctx.sessions, job_id), ctx.settings) == 2 * 3600.0 + 30.0


def test_a_helper_that_cannot_read_its_job_logs_one_line(
    sessions: sessionmaker[Session],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The database away: the helper looks again at its next poll, and says why in one line."""

    def away(*_args: object) -> None:
        raise unreachable("SELECT retrain_jobs ...")

    monkeypatch.setattr(repo, "get_job", away)
    watch = HelperWatch(sessions, 7, "helper", poll_s=60.0)
    with caplog.at_level(logging.WARNING, logger="app.tune.runner"):
        watch._look()  # one poll of its thread, here on the test's
    assert not watch.stopped()
    assert warnings_with(caplog, "cannot read the job") == [
        f"tune job 7: cannot read the job: OperationalError: {REFUSED}"
    ]
    assert multi_line_records(caplog) == []


def test_a_study_storage_that_cannot_be_opened_says_why_in_one_line() -> None:
    """The message ends in the tune job's error and log tail: the driver's line, no SQL."""
    with pytest.raises(TuningError) as caught:
        open_study_storage("postgresql+psycopg://postgres@127.0.0.1:1/genrec", attempts=1)
    assert "\n" not in str(caught.value) and "sqlalche.me" not in str(caught.value)
    assert str(caught.value).startswith("cannot open the study storage: OperationalError: ")


def test_a_helper_that_meets_a_database_error_logs_one_line_not_a_traceback(
    sqlite_url: str,
    make_job_context: JobContextFactory,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The database away as a helper joins: "helping failed" came with a traceback."""

    def away(*_args: object) -> None:
        raise unreachable("SELECT now()")

    monkeypatch.setattr(tune_runner, "_database_now", away)
    ctx = make_job_context(sqlite_url, job_lease_s=300.0)  # the watch does not poll here
    job = RetrainJob(
        id=7,
        kind="tune",
        params=TuneRequest(models=("ease",)).to_params(),
        search_until=lc.utcnow(),
        progress={"cutoff": lc.utcnow().isoformat()},
    )
    with caplog.at_level(logging.WARNING, logger="app.tune.runner"):
        assert help_tune_job(job, ctx, "helper", threading.Event()) == "help failed"
    assert warnings_with(caplog, "helping failed") == [
        f"tune job 7: helping failed: OperationalError: {REFUSED}"
    ]
    assert [r for r in caplog.records if r.exc_info] == []
    assert multi_line_records(caplog) == []
