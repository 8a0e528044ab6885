"""Two ``genrec worker`` processes share one tune job's study on the real Postgres.

One worker claims the job (the lead: it enqueues each model's first trial,
opens the search window, and alone refits, saves, gates and finishes); the
other finds no queued job and joins the open search. The study shows both ran
trials, no trial twice and no model's first trial enqueued twice, every trial
ended, and the job completed once, with one saved version.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from app.core.db import make_engine, make_sessionmaker
from app.retrain import lifecycle as lc
from app.tune.jobs import TuneRequest, enqueue_tune
from app.tune.study import open_study_storage, study_name
from models_store import ModelNotFound, ModelStore
from tests.conftest import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

MODELS = ("popularity", "ease")


def _worker(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "app.cli", "worker", "--poll-interval", "0.2"],
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
        )


def test_two_workers_share_one_study_without_duplicates_and_finish_once(
    tune_db: str, tmp_path: Path
) -> None:
    sessions = make_sessionmaker(make_engine(tune_db))
    request = TuneRequest(models=MODELS, budget_minutes=0.5, promote=True)
    job = enqueue_tune(sessions, request)
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "GENREC_DATABASE_URL": tune_db,
        "GENREC_STORE_DIR": str(tmp_path / "store"),
        "GENREC_AUTO_MIGRATE": "false",
        "GENREC_JOB_LEASE_S": "10",
        "GENREC_LOG_FORMAT": "text",
        "OMP_NUM_THREADS": "1",
    }
    logs = [tmp_path / "worker-a.log", tmp_path / "worker-b.log"]
    procs = [_worker(env, path) for path in logs]
    try:
        deadline = time.monotonic() + 240
        row = lc.get_job(sessions, job.id)
        while row.status in ("queued", "running") and time.monotonic() < deadline:
            assert all(p.poll() is None for p in procs), "a worker exited early"
            time.sleep(0.5)
            row = lc.get_job(sessions, job.id)
        output = "\n".join(path.read_text(errors="replace") for path in logs)
        assert row.status == "succeeded", f"{row.status} {row.error}\n{output[-6000:]}"
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
    output = "\n".join(path.read_text(errors="replace") for path in logs)

    # The job completed once: one attempt, one finish, one saved version.
    assert row.attempts == 1 and row.finished_at is not None and row.promoted is True
    store = ModelStore(tmp_path / "store")
    saved = []
    for model in MODELS:
        with contextlib.suppress(ModelNotFound):
            saved += [m for m in store.list_versions(model) if m.training.get("job_id") == job.id]
    assert [(m.model, m.version) for m in saved] == [(row.result["model"], row.result_version)]
    assert output.count(f"job {job.id}: succeeded") == 1

    # One study, both workers ran trials, none twice, every one ended.
    study = optuna.load_study(study_name=study_name(job.id), storage=open_study_storage(tune_db))
    trials = study.get_trials(deepcopy=False)
    assert [t.number for t in trials] == list(range(len(trials)))
    assert len({t._trial_id for t in trials}) == len(trials)
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials), Counter(
        t.state.name for t in trials
    )
    by_worker = Counter(t.user_attrs["worker"] for t in trials)
    assert len(by_worker) == 2 and row.worker_id in by_worker, by_worker
    enqueued = Counter(
        t.system_attrs["fixed_params"]["model"] for t in trials if "fixed_params" in t.system_attrs
    )
    assert enqueued == Counter(MODELS)  # each model's first trial exactly once
    # Each worker samples with a seed of its own: a continuous setting is never drawn twice
    # (with one seed, two TPE samplers that saw the same trials drew the same l2).
    l2 = [t.params["ease.l2"] for t in trials if "ease.l2" in t.params]
    assert len(l2) == len(set(l2)) > 1
    # The job's record counts every trial of both workers.
    assert sum(row.result["trials"].values()) == len(trials)
    assert row.progress is not None and row.progress["workers"] == 2
