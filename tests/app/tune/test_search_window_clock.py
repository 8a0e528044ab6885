"""A tune job's search window runs on the database's clock, as job leases do
(``tests/app/retrain/test_lease_clock.py``): the lead writes ``search_until`` and the
helpers compare it with the time, on different machines whose clocks may be far off."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from app import repository as repo
from app.core.db import session_scope
from app.retrain import lifecycle as lc
from app.retrain.runner import JobContext
from app.tune import runner as tune_runner
from app.tune.jobs import TuneRequest, enqueue_tune
from app.worker import Worker
from models_store import iso_utc
from tests.app.conftest import JobContextFactory
from tests.app.tune.tune_lead import lead_with_window

pytestmark = pytest.mark.integration

#: The job the test leads: one quick trial.
_REQUEST = TuneRequest(models=("popularity",), budget_minutes=0.5, trials=1)

#: Far more than any window: a machine whose clock was never synchronised.
SKEW = timedelta(minutes=30)


def _database_now(ctx: JobContext) -> datetime:
    with session_scope(ctx.sessions) as session:
        return repo.database_time(session)


def test_a_helper_whose_clock_is_ahead_still_joins_an_open_search(
    tune_db: str, make_job_context: JobContextFactory
) -> None:
    """By its own clock the window had closed half an hour ago: it never helped."""
    ctx = make_job_context(tune_db)
    lead_with_window(ctx, tune_db, _REQUEST, timedelta(seconds=30))
    ahead = Worker(ctx, worker_id="helper", clock=lambda: lc.utcnow() + SKEW)
    assert ahead.step() == "helped"


def test_a_helper_whose_clock_is_behind_does_not_join_a_closed_search(
    tune_db: str, make_job_context: JobContextFactory
) -> None:
    """A window whose end has passed (its lead died before closing it) looked open for
    another half hour to a helper behind, which searched that long on its own."""
    ctx = make_job_context(tune_db)
    lead_with_window(ctx, tune_db, _REQUEST, timedelta(seconds=-1))
    behind = Worker(ctx, worker_id="helper", clock=lambda: lc.utcnow() - SKEW)
    assert behind.step() is None


class _Stop(BaseException):
    """Ends the lead's run once it has opened the window."""


def test_a_leads_window_ends_by_the_databases_clock(
    tune_db: str, make_job_context: JobContextFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lead half an hour behind wrote a window that had ended for everyone else."""
    ctx = make_job_context(tune_db)
    request = TuneRequest(models=("popularity",), budget_minutes=0.5, trials=1)
    job = enqueue_tune(ctx.sessions, request)
    real = tune_runner.utcnow
    monkeypatch.setattr(tune_runner, "utcnow", lambda: real() - SKEW)
    windows: list[datetime | None] = []

    def opened(lease: object, ctx: object, until: datetime | None) -> None:
        windows.append(until)
        raise _Stop

    monkeypatch.setattr(tune_runner, "_set_window", opened)
    before = _database_now(ctx)
    with pytest.raises(_Stop):
        Worker(ctx, worker_id="lead").step()
    after = _database_now(ctx)
    (until,) = windows
    assert until is not None
    search = timedelta(seconds=request.search_settings().search_seconds)
    assert before + search <= until <= after + search
    assert lc.get_job(ctx.sessions, job.id).progress["search_until"] == iso_utc(until)
