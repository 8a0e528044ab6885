"""The lead of a tune job, played by a test: claim, cutoff, study and search window, as
``app.tune.runner`` writes them, so the helpers' side can be tested alone."""

from __future__ import annotations

from datetime import timedelta

from app import repository as repo
from app.core.db import session_scope
from app.retrain import lifecycle as lc
from app.retrain.runner import JobContext
from app.tune.jobs import TuneRequest, enqueue_tune
from app.tune.study import open_study_storage, study_name
from models_store import iso_utc
from training.data.log_reader import read_interaction_log
from training.tuning.search import open_search


def lead_with_window(
    ctx: JobContext, url: str, request: TuneRequest, window: timedelta = timedelta(seconds=30)
) -> int:
    """Enqueue ``request``, claim it as worker ``lead``, open its study (on ``url``, the
    database of ``ctx``) and a search window ending ``window`` from the database's now,
    the clock the lead writes it on."""
    job = enqueue_tune(ctx.sessions, request)
    claimed = lc.claim_next(ctx.sessions, "lead", 60.0)
    assert claimed is not None and claimed.id == job.id
    fence = repo.JobFence(job.id, "lead", claimed.attempts)
    with session_scope(ctx.sessions) as session:
        now = repo.database_time(session)
    data = read_interaction_log(url, until=now)
    open_search(
        data,
        request.search_settings(),
        storage=open_study_storage(url),
        study_name=study_name(job.id),
    )
    with session_scope(ctx.sessions) as session:
        assert repo.write_job_progress(session, fence, now, {"cutoff": iso_utc(now)}, "")
        assert repo.set_search_window(session, fence, now, now + window)
    return job.id
