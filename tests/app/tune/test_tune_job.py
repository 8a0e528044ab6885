"""A tune job through the worker against the real Postgres: search, refit, gate, save, promote.

The two-process version (two ``genrec worker`` processes sharing one study) is
``test_two_workers.py``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from sqlalchemy import inspect

import app.tune.runner as tune_runner
from app.core.db import make_engine, make_sessionmaker, session_scope, upgrade_database
from app.db_models import RetrainJob
from app.repository import NewInteraction, add_interactions
from app.retrain import lifecycle as lc
from app.tune.jobs import TuneRequest, enqueue_tune, schedule_tune
from app.tune.study import OPTUNA_SCHEMA, open_study_storage, study_name
from app.worker import Worker
from models_store import iso_utc
from tests.app.conftest import JobContextFactory
from tests.app.tune.conftest import N_USERS, log_clicks
from tests.conftest import age_log
from tests.job_leases import expire_leases
from tests.manual_clock import ManualClock
from training.models.base import EpochReport
from training.tuning import objective
from training.tuning.pruning import EpochPruning

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _no_helpers_to_wait_for(monkeypatch: pytest.MonkeyPatch) -> None:
    """These jobs run in one worker with no helper: the margin a helper that was just
    starting a trial gets (``WINDOW_MARGIN_S``, a 2-s sleep of the lead's after every
    search) is a wait for nobody. The margin itself is used in ``test_two_workers.py``."""
    monkeypatch.setattr(tune_runner, "WINDOW_MARGIN_S", 0.0)


def test_a_tune_job_searches_refits_gates_saves_and_promotes(
    tune_db: str, make_job_context: JobContextFactory
) -> None:
    ctx = make_job_context(tune_db, job_lease_s=10.0)
    request = TuneRequest(
        models=("popularity", "ease"), budget_minutes=0.5, trials=4, promote=True, confirm_folds=2
    )
    job = enqueue_tune(ctx.sessions, request)

    assert Worker(ctx).step() == "succeeded"

    row = lc.get_job(ctx.sessions, job.id)
    assert (row.kind, row.status, row.attempts, row.promoted) == ("tune", "succeeded", 1, True)
    result = row.result
    assert result is not None
    assert [e["model"] for e in result["leaderboard"]] == ["ease", "popularity"]
    assert (result["model"], result["version"]) == ("ease", row.result_version)
    assert result["metric"] == "ndcg@40" and result["split"]["kind"] == "users"  # 40 items
    assert sum(result["trials"].values()) == 4
    assert row.gate is not None and row.gate["reason"] == "no production version yet"
    assert row.search_until is None  # the window closes with the job
    assert row.progress is not None
    assert row.progress["phase"] == "succeeded" and row.progress["trials_done"] == 4
    assert row.progress["trials_running"] == 0
    assert row.progress["metric"] == "ndcg@40"  # the refit's epochs do not clear it
    assert not {"search_until", "seconds_left"} & set(row.progress)  # no countdown once ended
    assert row.progress["best"]["model"] == "ease"
    tail = (row.log_tail or "").splitlines()
    assert any("trial 0 popularity complete" in line for line in tail)
    assert any(line.endswith(f"saved ease version {row.result_version}") for line in tail)
    # The lead re-validated the finalists on one more split (two models finished trials,
    # so ease's second-best trial took the third place); ease kept its lead.
    confirmation = result["confirmation"]
    assert confirmation["folds"] == 2
    finalists = [f["model"] for f in confirmation["finalists"]]
    assert sorted(finalists) == ["ease", "ease", "popularity"] and finalists[0] == "ease"
    assert result["leaderboard"][0]["confirmed"] == confirmation["finalists"][0]["mean"]
    assert any("confirm ease:" in line for line in tail)

    manifest = ctx.store.manifest("ease", str(row.result_version))
    assert manifest.training["job_id"] == job.id
    assert manifest.training["tuning"]["winner"]["model"] == "ease"
    assert manifest.data.source == "log"
    assert ctx.store.alias_state("ease") == row.result_version

    # The study lives in the service database, in Optuna's own schema.
    study = optuna.load_study(study_name=study_name(job.id), storage=open_study_storage(tune_db))
    assert len(study.trials) == 4
    assert {t.user_attrs["worker"] for t in study.trials} == {row.worker_id}
    tables = inspect(make_engine(tune_db))
    assert "trials" in tables.get_table_names(schema=OPTUNA_SCHEMA)
    assert "trials" not in tables.get_table_names()  # the service's schema is untouched


def test_promote_false_keeps_production_and_says_so(
    tune_db: str, make_job_context: JobContextFactory
) -> None:
    ctx = make_job_context(tune_db, job_lease_s=10.0)
    job = enqueue_tune(ctx.sessions, TuneRequest(models=("ease",), budget_minutes=0.5, trials=2))
    assert Worker(ctx).step() == "succeeded"
    row = lc.get_job(ctx.sessions, job.id)
    assert (row.promote, row.promoted) == ("never", False)
    assert row.gate is not None and row.gate["promote"] is True  # it would have passed
    assert ctx.store.alias_state("ease") is None
    assert "did not ask to" in (row.log_tail or "")


def test_embedded_mode_keeps_the_study_in_a_sqlite_file_next_to_the_log(
    tmp_path: Path, make_job_context: JobContextFactory
) -> None:
    url = f"sqlite:///{tmp_path}/genrec.db"
    log_clicks(url)
    ctx = make_job_context(url, job_lease_s=10.0)
    job = enqueue_tune(ctx.sessions, TuneRequest(models=("ease",), budget_minutes=0.5, trials=2))
    assert Worker(ctx).step() == "succeeded"
    assert (tmp_path / "genrec-optuna.db").exists()
    study = optuna.load_study(study_name=study_name(job.id), storage=open_study_storage(url))
    assert len(study.trials) == 2


def test_a_model_that_cannot_train_on_the_log_is_dropped_and_the_job_says_why(
    tmp_path: Path, make_job_context: JobContextFactory
) -> None:
    """The log holds clicks, no ratings: CF-NADE (a model of rating levels) is left out
    before the search, and the job's progress, log and result say so."""
    url = f"sqlite:///{tmp_path}/genrec.db"
    log_clicks(url)
    ctx = make_job_context(url, job_lease_s=10.0)
    request = TuneRequest(models=("cf-nade", "ease"), budget_minutes=0.5, trials=3)
    job = enqueue_tune(ctx.sessions, request)
    assert Worker(ctx).step() == "succeeded"

    row = lc.get_job(ctx.sessions, job.id)
    why = "model 'cf-nade' predicts explicit ratings; the training data is implicit (no rating column)"
    assert row.progress is not None and row.progress["dropped"] == {"cf-nade": why}
    assert row.result is not None and row.result["dropped"] == {"cf-nade": why}
    assert [e["model"] for e in row.result["leaderboard"]] == ["ease"]
    assert any(
        line.endswith(f" dropped cf-nade: {why}") for line in (row.log_tail or "").splitlines()
    )
    study = optuna.load_study(study_name=study_name(job.id), storage=open_study_storage(url))
    assert [t.params["model"] for t in study.trials] == ["ease"] * 3  # none spent on it


def test_a_ratings_search_on_clicks_and_ratings_reads_the_ratings_alone(
    tmp_path: Path, make_job_context: JobContextFactory
) -> None:
    """Clicks beside ratings were ratings of 1.0 to a ratings search: it fitted and validated
    on them (a live log's winner had an RMSE of 1.73 on ratings of 4 and 5). It reads the
    rated rows alone, so its validation RMSE is that of ratings of 4 and 5."""
    url = f"sqlite:///{tmp_path}/genrec.db"
    log_clicks(url)
    rated = [
        NewInteraction(f"user{u}", f"rated{k}", 4.0 + (u + k) % 2)
        for u in range(N_USERS)
        for k in range(10)
    ]
    engine = make_engine(url)
    with session_scope(make_sessionmaker(engine)) as session:
        add_interactions(session, rated)
    engine.dispose()
    age_log(url)
    ctx = make_job_context(url, job_lease_s=10.0)
    request = TuneRequest(
        task="ratings", models=("biased-mf",), budget_minutes=0.5, trials=2, confirm_folds=2
    )
    job = enqueue_tune(ctx.sessions, request)
    assert Worker(ctx).step() == "succeeded"

    row = lc.get_job(ctx.sessions, job.id)
    tail = (row.log_tail or "").splitlines()
    assert any(f"data: the interaction log, {len(rated):,} interactions" in line for line in tail)
    assert row.result is not None and row.result["metric"] == "rmse"
    assert row.result["leaderboard"][0]["value"] < 1.0


def test_a_cancel_stops_the_leads_trial_at_its_next_epoch(
    tmp_path: Path, make_job_context: JobContextFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As a retrain job's fit stops: not only once the trial ends (a mult-vae trial
    on real data runs for minutes)."""
    url = f"sqlite:///{tmp_path}/genrec.db"
    log_clicks(url)
    ctx = make_job_context(url, job_lease_s=10.0)
    job = enqueue_tune(ctx.sessions, TuneRequest(models=("mult-vae",), budget_minutes=0.5))
    monkeypatch.setattr(lc, "PROGRESS_INTERVAL_S", 0.0)  # every epoch writes, and sees a cancel
    epochs: list[int] = []  # of the trial's fit, from the one during which it was cancelled

    class CancelledAtItsFirstEpoch(EpochPruning):
        def __call__(self, report: EpochReport) -> None:
            if not epochs:
                lc.cancel_job(ctx.sessions, job.id)
            epochs.append(report.epoch)
            super().__call__(report)

    monkeypatch.setattr(objective, "EpochPruning", CancelledAtItsFirstEpoch)

    assert Worker(ctx).step() == "cancelled"

    assert epochs[0] == 1 and len(epochs) <= 2, epochs  # it stopped at the next epoch
    study = optuna.load_study(study_name=study_name(job.id), storage=open_study_storage(url))
    assert [t.state for t in study.trials] == [TrialState.FAIL]
    row = lc.get_job(ctx.sessions, job.id)
    assert (row.status, row.search_until) == ("cancelled", None)


def test_too_little_data_fails_the_job_with_the_reason(
    tmp_path: Path, make_job_context: JobContextFactory
) -> None:
    url = f"sqlite:///{tmp_path}/empty.db"
    upgrade_database(url)
    ctx = make_job_context(url, job_lease_s=10.0)
    job = enqueue_tune(ctx.sessions, TuneRequest(models=("ease",), budget_minutes=0.5))
    assert Worker(ctx).step() == "failed"
    row = lc.get_job(ctx.sessions, job.id)
    assert row.status == "failed" and row.error is not None
    assert "interaction" in row.error.lower()


def test_the_schedule_enqueues_one_tune_job_per_slot(
    tune_db: str, make_job_context: JobContextFactory
) -> None:
    ctx = make_job_context(tune_db, job_lease_s=10.0)
    now = lc.utcnow()
    first = schedule_tune(ctx.sessions, 3600.0, 1.0, now)
    assert first is not None and first.trigger == "schedule" and first.kind == "tune"
    assert schedule_tune(ctx.sessions, 3600.0, 1.0, now) is None  # the newest is too young
    jobs = lc.list_jobs(ctx.sessions)
    assert [(j.kind, j.params["promote"], j.params["budget_minutes"]) for j in jobs] == [
        ("tune", True, 1.0)
    ]
    # A period later the first search is still queued: no second search of the same log.
    later = now + timedelta(hours=1, minutes=1)
    assert schedule_tune(ctx.sessions, 3600.0, 1.0, later) is None
    lc.cancel_job(ctx.sessions, first.id)
    again = schedule_tune(ctx.sessions, 3600.0, 1.0, later)
    assert again is not None and again.id != first.id


class _Crash(BaseException):
    """Stands in for SIGKILL: nothing after it runs, nothing is cleaned up."""


def test_a_retry_after_a_crash_finishes_the_saved_winner_instead_of_searching_again(
    tune_db: str, make_job_context: JobContextFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = make_job_context(tune_db, job_lease_s=10.0)
    request = TuneRequest(models=("popularity", "ease"), budget_minutes=0.5, trials=3, promote=True)
    job = enqueue_tune(ctx.sessions, request)
    promote = tune_runner.promote_if

    def crash(*args: object, **kwargs: object) -> None:
        raise _Crash

    monkeypatch.setattr(tune_runner, "promote_if", crash)
    clock = ManualClock(lc.utcnow())
    with pytest.raises(_Crash):
        Worker(ctx, clock=clock).step()
    first = lc.get_job(ctx.sessions, job.id)
    assert first.status == "running" and first.result_version is None

    monkeypatch.setattr(tune_runner, "promote_if", promote)
    windows: list[datetime | None] = []
    monkeypatch.setattr(tune_runner, "_set_window", lambda *args: windows.append(args[-1]))
    expire_leases(ctx.sessions)  # the lease expires
    assert Worker(ctx, clock=clock).step() == "succeeded"
    row = lc.get_job(ctx.sessions, job.id)
    assert (row.status, row.attempts, row.promoted) == ("succeeded", 2, True)
    # The retry kept the first attempt's window (now in progress only while running).
    assert first.progress is not None and windows[0] is not None
    assert iso_utc(windows[0]) == first.progress["search_until"]
    assert "saved by an earlier attempt" in (row.log_tail or "")
    versions = ctx.store.list_versions(row.result["model"])
    assert [m.version for m in versions if m.training.get("job_id") == job.id] == [
        row.result_version
    ]
    study = optuna.load_study(study_name=study_name(job.id), storage=open_study_storage(tune_db))
    assert len(study.trials) == 3  # the trial cap was reached: the retry ran none


def test_a_tune_job_whose_params_no_longer_read_fails_and_the_worker_goes_on(
    tune_db: str, make_job_context: JobContextFactory
) -> None:
    """A tune row this release cannot read (queued by another release: a field renamed)
    is failed with the reason; it raised out of the worker's loop, killing the worker,
    and every worker after it that claimed it or looked for a search to join."""
    ctx = make_job_context(tune_db, job_lease_s=10.0)
    job = enqueue_tune(ctx.sessions, TuneRequest(models=("popularity",), budget_minutes=0.5))
    with ctx.sessions.begin() as session:
        row = session.get(RetrainJob, job.id)
        assert row is not None
        row.params = {**row.params, "budget": 3}
    assert Worker(ctx).step() == "failed"
    failed = lc.get_job(ctx.sessions, job.id)
    assert failed.status == "failed" and failed.attempts == 1
    assert failed.error is not None and "'budget'" in failed.error


def test_a_rating_model_in_a_topk_job_on_clicks_and_ratings_is_saved_on_the_ratings(
    tmp_path: Path, make_job_context: JobContextFactory
) -> None:
    """A top-k job reads every event; a rating model that wins it is refitted and saved on
    the rated rows alone, as ``genrec train`` fits it (it was saved on every click too,
    each a rating of 1.0)."""
    url = f"sqlite:///{tmp_path}/genrec.db"
    log_clicks(url)
    rated = [
        NewInteraction(f"user{u}", f"rated{k}", 4.0 + (u + k) % 2)
        for u in range(N_USERS)
        for k in range(10)
    ]
    engine = make_engine(url)
    with session_scope(make_sessionmaker(engine)) as session:
        add_interactions(session, rated)
    engine.dispose()
    age_log(url)
    ctx = make_job_context(url, job_lease_s=10.0)
    request = TuneRequest(
        task="topk", models=("biased-mf",), budget_minutes=0.5, trials=1, metric="ndcg@10"
    )
    job = enqueue_tune(ctx.sessions, request)
    assert Worker(ctx).step() == "succeeded"

    row = lc.get_job(ctx.sessions, job.id)
    assert row.result is not None and row.result["metric"] == "ndcg@10"
    manifest = ctx.store.manifest("biased-mf", str(row.result_version))
    assert manifest.data.n_interactions == len(rated)
    assert manifest.scorer_config["rating_range"] == [4.0, 5.0]
