"""Tune jobs over a worker fleet: how many trials W ``genrec worker`` processes run in one window.

    OMP_NUM_THREADS=1 GENREC_DATA_DIR=../shared/data PYTHONPATH=$PWD \\
        python benchmarks/tune_workers.py --workers 2 --budget-minutes 1 --models popularity,ease

Creates a private Postgres database (``--postgres``, the server's admin URL),
migrates it, logs ML-100K's ratings (``--data``, any ``load_dataset`` name)
as the interaction log with the original timestamps, records one tune job
(``POST /admin/tune``'s code path), starts W ``genrec worker`` processes and
waits for the job. Prints the trials each worker ran, the total, the
duplicates (trial numbers, enqueued first trials, settings drawn twice),
the job's time from claim to finish and its winner; drops the database.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import optuna
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.core.db import make_engine, make_sessionmaker, session_scope, upgrade_database
from app.repository import NewInteraction, add_interactions
from app.retrain import lifecycle as lc
from app.tune.jobs import TuneRequest, enqueue_tune
from app.tune.study import open_study_storage, study_name
from training.data.datasets import load_dataset

REPO = Path(__file__).resolve().parent.parent


def log_dataset(url: str, name: str) -> int:
    data = load_dataset(name, data_dir=Path(os.environ.get("GENREC_DATA_DIR", "../shared/data")))
    users = np.asarray(data.user_ids.ids, dtype=object)[data.users]
    items = np.asarray(data.item_ids.ids, dtype=object)[data.items]
    rows = [
        NewInteraction(str(u), str(i), float(r), datetime.fromtimestamp(int(t), UTC))
        for u, i, r, t in zip(users, items, data.ratings, data.timestamps, strict=True)
    ]
    sessions = make_sessionmaker(make_engine(url))
    for start in range(0, len(rows), 5000):
        with session_scope(sessions) as session:
            add_interactions(session, rows[start : start + 5000])
    return len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--budget-minutes", type=float, default=1.0)
    parser.add_argument("--models", default="popularity,ease")
    parser.add_argument("--trials", type=int, default=None)
    parser.add_argument("--data", default="ml-100k")
    parser.add_argument(
        "--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )
    args = parser.parse_args()

    admin = create_engine(args.postgres, isolation_level="AUTOCOMMIT")
    db = f"genrec_tune_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{db}"'))
    url = make_url(args.postgres).set(database=db).render_as_string(hide_password=False)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        upgrade_database(url)
        print(f"logged {log_dataset(url, args.data):,} interactions of {args.data}")
        sessions = make_sessionmaker(make_engine(url))
        request = TuneRequest(
            models=tuple(args.models.split(",")),
            budget_minutes=args.budget_minutes,
            trials=args.trials,
        )
        job = enqueue_tune(sessions, request)
        store = tempfile.mkdtemp(prefix="tune-bench-store-")
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "GENREC_DATABASE_URL": url,
            "GENREC_STORE_DIR": store,
            "GENREC_AUTO_MIGRATE": "false",
            "GENREC_LOG_FORMAT": "text",
            "GENREC_JOB_POLL_INTERVAL_S": "0.2",
        }
        for _ in range(args.workers):
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "app.cli", "worker"],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        row = lc.get_job(sessions, job.id)
        while row.status in ("queued", "running"):
            time.sleep(1.0)
            row = lc.get_job(sessions, job.id)
        study = optuna.load_study(study_name=study_name(job.id), storage=open_study_storage(url))
        trials = study.get_trials(deepcopy=False)
        by_worker = Counter(str(t.user_attrs.get("worker")) for t in trials)
        firsts = Counter(
            t.system_attrs["fixed_params"]["model"]
            for t in trials
            if "fixed_params" in t.system_attrs
        )
        drawn = Counter(
            tuple(sorted(t.params.items()))
            for t in trials
            if "not refitted" not in str(t.user_attrs.get("stopped", ""))
            and len(t.params) > 1  # a model with nothing to search repeats by design
        )
        assert row.started_at is not None and row.finished_at is not None
        print(f"job {job.id}: {row.status} {row.error or ''}")
        print(f"workers {args.workers}, budget {args.budget_minutes} min, models {args.models}")
        print(f"trials {len(trials)}; per worker {sorted(by_worker.values(), reverse=True)}")
        print(f"states {dict(Counter(t.state.name for t in trials))}")
        print(
            f"duplicates: numbers {len(trials) - len({t.number for t in trials})}, "
            f"first trials {sum(n - 1 for n in firsts.values())}, "
            f"settings {sum(n - 1 for n in drawn.values())}"
        )
        print(f"claim to finish {(row.finished_at - row.started_at).total_seconds():.1f} s")
        result = row.result or {}
        print(f"winner {result.get('model')} v{result.get('version')}: {result.get('winner')}")
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        with admin.connect() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": db},
            )
            conn.execute(text(f'DROP DATABASE IF EXISTS "{db}"'))
        admin.dispose()


if __name__ == "__main__":
    main()
