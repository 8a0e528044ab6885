"""A worker with no queued job joins the open search of a tune job another worker leads.

Here the lead is played by the test (claim, cutoff, study, window); the real two-process
run is ``test_two_workers.py``.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import optuna
import pytest

from app import repository as repo
from app.core.db import session_scope
from app.retrain import lifecycle as lc
from app.retrain.runner import JobContext
from app.tune.jobs import TuneRequest, enqueue_tune
from app.tune.runner import help_tune_job
from app.tune.study import open_study_storage, study_name
from app.worker import Worker
from models_store import iso_utc
from tests.app.conftest import JobContextFactory
from training.data.log_reader import read_interaction_log
from training.tuning.search import open_search

pytestmark = pytest.mark.integration


def _lead(ctx: JobContext, url: str, request: TuneRequest) -> int:
    """Enqueue ``request``, claim it as worker ``lead``, open its study (on ``url``, the
    database of ``ctx``) and its window."""
    job = enqueue_tune(ctx.sessions, request)
    claimed = lc.claim_next(ctx.sessions, "lead", 60.0)
    assert claimed is not None and claimed.id == job.id
    fence = repo.JobFence(job.id, "lead", claimed.attempts)
    now = lc.utcnow()
    data = read_interaction_log(url, until=now)
    open_search(
        data,
        request.search_settings(),
        storage=open_study_storage(url),
        study_name=study_name(job.id),
    )
    with session_scope(ctx.sessions) as session:
        assert repo.write_job_progress(session, fence, now, {"cutoff": iso_utc(now)}, "")
        assert repo.set_search_window(session, fence, now, now + timedelta(seconds=30))
    return job.id


def test_an_idle_worker_runs_trials_of_the_open_search_and_leaves_the_job_alone(
    tune_db: str, make_job_context: JobContextFactory
) -> None:
    ctx = make_job_context(tune_db)
    request = TuneRequest(models=("popularity", "ease"), budget_minutes=0.5, trials=3)
    job_id = _lead(ctx, tune_db, request)
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
    job_id = _lead(ctx, tune_db, TuneRequest(models=("ease",), budget_minutes=0.5))
    row = lc.get_job(ctx.sessions, job_id)
    lc.cancel_job(ctx.sessions, job_id)
    stop = threading.Event()
    assert help_tune_job(row, ctx, "helper", stop) == "helped"
    study = optuna.load_study(study_name=study_name(job_id), storage=open_study_storage(tune_db))
    assert [t.state.name for t in study.trials] == ["WAITING"]  # only the lead's enqueued one
    assert Worker(ctx, worker_id="other").step() is None  # nothing to join any more
