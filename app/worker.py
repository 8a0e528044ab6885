"""``genrec worker``: the retrain loop — claim a job, run it under a lease, repeat.

Run any number of workers on any machines that reach the database and the
model store; the database decides who runs what (``app/retrain/lifecycle``).
A worker also fails jobs whose workers died too often, and, when
``GENREC_RETRAIN_EVERY`` is set, schedules periodic jobs for the default model
(``GENREC_TUNE_INTERVAL_HOURS``: periodic tune jobs). A worker with no queued
job joins the open search of a tune job another worker leads (``app/tune``).
The embedded default (SQLite) runs this same code.

SIGTERM/SIGINT: the running job stops at its next epoch and goes back to the
queue for another worker (tried for at most ``HAND_BACK_BUDGET_S``: with the
database away it cannot, the worker says so and exits, and the job is taken
over when its lease expires); SIGKILL: its lease expires and another worker
takes it over.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from types import FrameType
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from app import repository as repo
from app.core.config import Settings, get_settings
from app.core.db import make_engine, make_sessionmaker, session_scope, upgrade_database
from app.core.logs import configure_logging
from app.db_models import RetrainJob
from app.repository import JobFence
from app.retrain.lifecycle import (
    InvalidJob,
    JobLease,
    claim_taking_over,
    error_line,
    fail_exhausted,
    schedule_periodic,
    takeover_line,
    utcnow,
)
from app.retrain.runner import JobContext, note_saved_version, run_claimed_job
from app.serving.default_model import choose_default_model
from app.serving.holder import resolve_device
from app.tune.jobs import TUNE, TuneRequest, schedule_tune
from app.tune.runner import help_tune_job, run_tune_job
from models_store import ModelStore

log = logging.getLogger(__name__)


def job_time_limit_s(job: RetrainJob, settings: Settings) -> float:
    """How long an attempt of ``job`` may run (``JobLease``): ``GENREC_JOB_MAX_HOURS``, and
    for a tune job its search budget on top, so the limit always exceeds the budget by
    the time any job may take (its refit is one training like a retrain job's).

    A tune job whose params this release cannot read gets the plain limit: it fails at
    its first step anyway (``TuneRequest.from_params``).
    """
    limit = settings.job_max_hours * 3600.0
    if job.kind == TUNE:
        with contextlib.suppress(InvalidJob, TypeError):
            limit += TuneRequest.from_params(job.params).budget_minutes * 60.0
    return limit


def default_worker_id() -> str:
    """host-pid-random: unique per process, readable in the job row."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


#: The outcome of a job the worker handed back to the queue as it stopped (SIGTERM):
#: ``runner.job_outcome`` releases it, attempt and all, for another worker to run.
HANDED_BACK = "stopping"


@dataclass
class Worker:
    """One worker's loop state; ``step()`` is one pass, ``run()`` loops until stopped."""

    ctx: JobContext
    worker_id: str = field(default_factory=default_worker_id)
    stop: threading.Event = field(default_factory=threading.Event)
    #: The UTC clock of schedules and of the times a job's row and log show (leases are the
    #: database's clock: ``app.core.db_time``); tests pass one they advance.
    clock: Callable[[], datetime] = utcnow
    #: Tune jobs this worker already helped (it joins each search once).
    helped: set[int] = field(default_factory=set)
    #: The clock a job's time limit is measured on, the lead's (``JobLease``) and a
    #: helper's (``help_tune_job``); tests pass one they advance.
    monotonic: Callable[[], float] = time.monotonic

    @property
    def settings(self) -> Settings:
        return self.ctx.settings

    def _default_model(self) -> str:
        """The model periodic retraining refreshes: the one the servers answer with by default."""
        if self.settings.default_model_explicit:
            return self.settings.default_model
        return choose_default_model(self.ctx.store) or self.settings.default_model

    def step(self) -> str | None:
        """Housekeeping, then claim and run at most one job; returns its outcome or None."""
        sessions = self.ctx.sessions
        if self.settings.retrain_every:
            schedule_periodic(
                sessions, self._default_model(), self.settings.retrain_every, self.clock()
            )
        if self.settings.tune_interval_hours:
            schedule_tune(
                sessions,
                self.settings.tune_interval_hours * 3600.0,
                self.settings.tune_budget_minutes,
                self.clock(),
            )
        failed = fail_exhausted(sessions)
        if failed:
            log.warning("failed %d job(s) whose workers died on every attempt", len(failed))
        for job_id in failed:
            note_saved_version(self.ctx, job_id)
        claimed = claim_taking_over(sessions, self.worker_id, self.settings.job_lease_s)
        if claimed is None:
            return self._help()
        job = claimed.job
        fence = JobFence(job.id, self.worker_id, job.attempts)
        lease_s = self.settings.job_lease_s
        run = run_tune_job if job.kind == TUNE else run_claimed_job
        with JobLease(
            sessions,
            fence,
            lease_s,
            self.stop,
            clock=self.clock,
            log_tail=job.log_tail,
            max_run_s=job_time_limit_s(job, self.settings),
            last_attempt=job.attempts >= job.max_attempts,
            monotonic=self.monotonic,
        ) as lease:
            if claimed.taken_over is not None:  # why the attempt before stopped, first
                lease.log.add(takeover_line(claimed.taken_over), logging.WARNING, pin=True)
            outcome = run(job, lease, self.ctx)
        log.info("job %d: %s", job.id, outcome)
        return outcome

    def _help(self) -> str | None:
        """No queued job: join the search of a tune job another worker leads, if one is open."""
        with session_scope(self.ctx.sessions) as session:
            job = repo.joinable_tune_job(session, self.worker_id)
        if job is None or job.id in self.helped:
            return None
        outcome = help_tune_job(
            job,
            self.ctx,
            self.worker_id,
            self.stop,
            max_run_s=job_time_limit_s(job, self.settings),
            monotonic=self.monotonic,
        )
        if outcome == "not ready":
            return None
        self.helped.add(job.id)
        log.info("tune job %d: %s", job.id, outcome)
        return outcome

    def run(
        self,
        once: bool = False,
        poll_interval: float | None = None,
        outcomes: list[str] | None = None,
    ) -> int:
        """Loop until ``stop`` is set (or after one job with ``once``); returns the jobs run
        to an end (not one handed back to the queue as the worker stops: it was not run,
        another worker runs it), and appends each one's outcome to ``outcomes`` when given
        (``HANDED_BACK`` for a job handed back).

        A database error is waited out (logged, then the next poll), except with
        ``once``: it is raised, so a one-shot run cannot pass for one that found no job.
        """
        interval = poll_interval or self.settings.job_poll_interval_s
        ran = 0
        log.info("worker %s polling every %.1fs", self.worker_id, interval)
        while not self.stop.is_set():
            try:
                outcome = self.step()
            except SQLAlchemyError as exc:  # database away: wait and try again
                if once:  # nothing to wait for: the caller says why (non-zero exit)
                    raise
                log.warning("worker %s: database error: %s", self.worker_id, error_line(exc))
                outcome = None
            if outcome is not None:
                if outcome != HANDED_BACK:
                    ran += 1
                if outcomes is not None:
                    outcomes.append(outcome)
            if once:
                break
            if outcome is None:
                self.stop.wait(interval)
        return ran


def build_context(settings: Settings) -> JobContext:
    """Engine (after migrating when ``auto_migrate``), store and device for the jobs."""
    if settings.auto_migrate:
        try:
            upgrade_database(settings.database_url)
        except Exception as exc:  # e.g. the server migrating at the same moment; retried by use
            log.error("database migration at worker start failed: %s", error_line(exc))
    # The server's connect timeout too: a black-holed database then costs a lease renewal
    # or a stopping worker's hand-back (3 s, ``HAND_BACK_BUDGET_S``) seconds, not the
    # driver's default 10 s.
    engine = make_engine(settings.database_url, connect_timeout_s=settings.db_connect_timeout_s)
    return JobContext(
        settings=settings,
        store=ModelStore(settings.store_dir),
        sessions=make_sessionmaker(engine),
        device=resolve_device(settings.device),
        engine=engine,
    )


def run_worker(
    settings: Settings | None = None,
    *,
    once: bool = False,
    poll_interval: float | None = None,
    outcomes: list[str] | None = None,
) -> int:
    """Entry point of ``genrec worker``; returns the number of jobs run to an end (their
    outcomes, and a job handed back, appended to ``outcomes`` when given)."""
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_format)  # as genrec serve logs
    worker = Worker(build_context(settings))
    previous = _stop_on_signals(worker.stop)
    try:
        return worker.run(once=once, poll_interval=poll_interval, outcomes=outcomes)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if worker.ctx.engine is not None:
            worker.ctx.engine.dispose()


def _stop_on_signals(stop: threading.Event) -> dict[int, Any]:
    """SIGTERM/SIGINT set ``stop``; returns the handlers they replaced (to restore)."""

    def handle(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s: finishing up", signal.Signals(signum).name)
        stop.set()

    if threading.current_thread() is not threading.main_thread():
        return {}  # signals can only be handled on the main thread
    return {signum: signal.signal(signum, handle) for signum in (signal.SIGTERM, signal.SIGINT)}
