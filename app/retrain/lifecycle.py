"""The life of a retrain job: request rules, lease, progress, outcome, cancellation, schedule.

::

    queued --claim--> running --finish--> succeeded | failed
      |                 |   \\__ lease expired (worker died): claimable again while
      |                 |        attempts < max_attempts, else failed by the sweep
      |                 |   \\__ past its time limit (a hung worker: ``JobLease``): the lease
      |                 |        is no longer renewed, as if it died; failed on the last attempt
      |                 \\__ released (worker stopping): queued again, its attempt given back
      +--cancel--> cancelled <--cancel--+

A job is a database row, so it outlives every process. A worker holds a job
under a lease it renews from a background thread (``JobLease``); every write
it makes is fenced (``WHERE worker_id = me AND attempts = my attempt AND
status = 'running'``), so a worker that lost its lease — taken over after it
stalled, or cancelled — finds out at its next write and stops, and can never
complete a job that another worker holds. The SQL is in ``app.repository``.

Lease times are the database's clock, never a worker's: a claim, a renewal, the
expiry a takeover or the exhaustion sweep checks are computed in SQL
(``app.core.db_time``), so a worker whose clock is minutes off neither takes over a
live job nor writes a lease that has already expired. Other times a worker writes
(``updated_at``, ``finished_at``, log stamps) are its UTC clock, for people.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, get_args

from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app import repository as repo
from app.core.db import session_scope
from app.db_models import RetrainJob
from app.retrain.job_cursor import JobCursor
from app.retrain.params import param_type_errors
from training.models import REGISTRY
from training.models.base import ModelError

log = logging.getLogger(__name__)

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
JobKind = Literal["retrain", "tune"]
DataKind = Literal["log", "log+base"]
PromotePolicy = Literal["auto", "always", "never"]
Trigger = Literal["api", "schedule"]

#: A job whose worker died this many times is failed instead of retried (e.g. it OOMs);
#: a worker that stops gracefully hands its job back without using an attempt.
DEFAULT_MAX_ATTEMPTS = 3
#: Lines of the job's log kept in the row: this attempt's last ...
LOG_TAIL_LINES = 60
#: ... after the last lines the earlier attempts left (why the last one stopped) ...
EARLIER_LOG_LINES = 20
#: ... and after this attempt's first lines added with ``pin`` (at most this many): who
#: claimed it and why it took the job over, which a long run scrolled out of its 60.
PINNED_LOG_LINES = 4
#: Progress is written at most this often (the last epoch always is).
PROGRESS_INTERVAL_S = 0.5
#: Pauses before each new try of an outcome write that hit a database error (a
#: restarting database, a dropped connection); the lease is renewed meanwhile. After the
#: last, the attempt gives up and the job stays leased until its next attempt.
OUTCOME_RETRY_DELAYS_S = (0.5, 2.0, 5.0)
#: How long a stopping worker (SIGTERM) tries to hand its job back to the queue before it
#: leaves the job to its lease and exits: well under a container's stop grace period
#: (docker's default 10 s, Kubernetes' and this compose file's 30 s), so a worker whose
#: database is away, or black-holed (a query that never returns), still exits in time ...
HAND_BACK_BUDGET_S = 3.0
#: ... trying again after each of these pauses while the budget lasts: one failed try is
#: often a pooled connection the database dropped as it restarted, which the next replaces.
HAND_BACK_RETRY_DELAYS_S = (0.25, 0.5, 1.0)


def utcnow() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------- errors


class JobError(Exception):
    """A job operation that cannot be done; the message says why."""


class InvalidJob(JobError, ValueError):
    """The retrain request names an unknown model, setting, data kind or policy."""


class HandBackFailed(JobError):
    """A stopping worker could not hand its job back within ``HAND_BACK_BUDGET_S``; the
    message says why in one line (the database's error, or its silence)."""


class JobNotFound(JobError, LookupError):
    """No job of any kind (retrain or tune: one table, one id space) has this id."""

    def __init__(self, job_id: int) -> None:
        super().__init__(f"no job {job_id}")
        self.job_id = job_id


class JobConflict(JobError):
    """The job's status does not allow the operation (e.g. cancelling a finished job)."""


class DuplicateJob(JobConflict):
    """An identical job is already queued or running (``record_job(..., unless_active=True)``:
    ``enqueue`` and ``app.tune.jobs.enqueue_tune``)."""

    def __init__(self, job: RetrainJob) -> None:
        self.job_id = job.id
        self.status = job.status
        if job.kind == "tune":  # app.tune.jobs.TUNE (which imports this module)
            what = (
                "tune (same task, models, budget_minutes, trials, split, metric, seed, "
                "confirm_folds and promote)"
            )
        else:
            what = f"retrain of '{job.model}' (same params, data and promote)"
        super().__init__(
            f"an identical {what} is already {job.status} as job {job.id}; follow it with "
            f"GET /admin/jobs/{job.id}, or cancel it before starting another"
        )


#: Why a running job stopped early; also the attempt's outcome (``runner.job_outcome``).
AbortKind = Literal["cancelled", "lost", "stopping", "failed", "interrupted"]


class JobAborted(Exception):
    """Raised inside a running job to stop it: cancelled, lease lost, worker stopping, or
    past its time limit (``failed`` on its last attempt, else ``interrupted``)."""

    def __init__(self, reason: str, kind: AbortKind) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind


def error_line(exc: BaseException) -> str:
    """``exc`` in one line, for a job's ``error`` and log, which API and dashboard users read.

    A database error is its driver's first line: SQLAlchemy's own text goes on with
    the statement, its bound parameters and a link, none of which is for them.
    """
    if isinstance(exc, SQLAlchemyError):
        lines = str(getattr(exc, "orig", None) or exc).splitlines()
        return f"{type(exc).__name__}: {lines[0] if lines else 'database error'}"
    return f"{type(exc).__name__}: {exc}"


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class RetrainRequest:
    """What to retrain: model name, hyper-parameter overrides, data and promotion policy."""

    model: str
    params: dict[str, Any] = field(default_factory=dict)
    data: DataKind = "log+base"
    promote: PromotePolicy = "auto"


def validate_request(request: RetrainRequest) -> RetrainRequest:
    """Check the request now, so a typo fails at POST time, not minutes later in a worker."""
    if request.model not in REGISTRY:
        raise InvalidJob(f"unknown model '{request.model}'; known: {', '.join(sorted(REGISTRY))}")
    if request.data not in get_args(DataKind):
        raise InvalidJob(f"data must be one of {list(get_args(DataKind))}, got {request.data!r}")
    if request.promote not in get_args(PromotePolicy):
        raise InvalidJob(
            f"promote must be one of {list(get_args(PromotePolicy))}, got {request.promote!r}"
        )
    wrong = param_type_errors(REGISTRY[request.model].Config, request.params)
    if wrong:
        raise InvalidJob("params: " + "; ".join(wrong))
    try:
        REGISTRY[request.model].Config().with_overrides(request.params)
    except ModelError as exc:
        raise InvalidJob(f"params: {exc}") from None
    return request


def enqueue(
    sessions: sessionmaker[Session],
    request: RetrainRequest,
    trigger: Trigger = "api",
    dedupe_key: str | None = None,
    now: datetime | None = None,
    unless_active: bool = False,
) -> RetrainJob:
    """Record a queued job (durable once this returns); the request is validated first.

    ``unless_active`` (the admin API and the dashboard): while a job of the same model,
    params, data and promotion is queued or running, record nothing and raise
    ``DuplicateJob`` naming it (``record_job``).
    """
    validate_request(request)
    new = repo.NewJob(
        model=request.model,
        params=dict(request.params),
        data=request.data,
        promote=request.promote,
        trigger=trigger,
        max_attempts=DEFAULT_MAX_ATTEMPTS,
        dedupe_key=dedupe_key,
    )
    return record_job(sessions, new, now, unless_active=unless_active)


def record_job(
    sessions: sessionmaker[Session],
    new: repo.NewJob,
    now: datetime | None = None,
    unless_active: bool = False,
) -> RetrainJob:
    """Insert a validated job of any kind (``enqueue``, ``app.tune.jobs.enqueue_tune``).

    ``unless_active``: while a job of the same kind, model, params (as JSON), data and
    promotion is queued or running, record nothing and raise ``DuplicateJob`` naming it.
    The check and the insert share one lock (``repo.lock_job_requests``), so two
    identical requests at once queue one job.
    """
    with session_scope(sessions) as session:
        if unless_active:
            repo.lock_job_requests(session)
            twin = repo.find_active_twin(session, new)
            if twin is not None:
                raise DuplicateJob(twin)
        return repo.insert_job(session, new, now or utcnow())


# --------------------------------------------------------------------------- reading / cancel


def get_job(sessions: sessionmaker[Session], job_id: int) -> RetrainJob:
    with session_scope(sessions) as session:
        row = repo.get_job(session, job_id)
    if row is None:
        raise JobNotFound(job_id)
    return row


def list_jobs(
    sessions: sessionmaker[Session],
    status: JobStatus | None = None,
    model: str | None = None,
    limit: int = 50,
    *,
    kind: JobKind | None = None,
    after: JobCursor | None = None,
) -> list[RetrainJob]:
    """Newest first; ``after``: the page after the job this cursor names."""
    key = (after.created_at, after.job_id) if after is not None else None
    with session_scope(sessions) as session:
        return repo.list_jobs(
            session, status=status, model=model, kind=kind, after=key, limit=limit
        )


def cancel_job(sessions: sessionmaker[Session], job_id: int) -> RetrainJob:
    """Cancel a queued or running job; a running one stops at its next epoch or write.

    A cancelled job can no longer be finished by its worker (fenced writes
    require ``status = 'running'``), so it never promotes after the cancel.
    """
    with session_scope(sessions) as session:
        done = repo.cancel_job(session, job_id, utcnow())
        row = repo.get_job(session, job_id)
    if row is None:
        raise JobNotFound(job_id)
    if not done:
        raise JobConflict(
            f"job {job_id} is already {row.status}; only queued or running jobs can be cancelled"
        )
    return row


# --------------------------------------------------------------------------- worker side


def claim_next(
    sessions: sessionmaker[Session], worker_id: str, lease_s: float
) -> RetrainJob | None:
    """Claim the oldest claimable job for ``worker_id`` (attempts + 1, a fresh lease of
    ``lease_s`` seconds by the database's clock)."""
    with session_scope(sessions) as session:
        return repo.claim_job(session, worker_id, lease_s)


def claim_taking_over(
    sessions: sessionmaker[Session], worker_id: str, lease_s: float
) -> repo.Claim | None:
    """``claim_next``, also saying which attempt it took over after its lease expired
    (``takeover_line``)."""
    with session_scope(sessions) as session:
        return repo.claim(session, worker_id, lease_s)


def takeover_line(taken: repo.Takeover) -> str:
    """The job log's line for a takeover: without it the attempt before's lines just ended
    and the new one's began, nothing saying why."""
    expired = repo.log_time(taken.lease_expired_at)
    return (
        f"taking over from attempt {taken.attempt} (worker {taken.worker_id}): its lease "
        f"expired at {expired} without a hand-back (the worker died or lost the database)"
    )


def fail_exhausted(sessions: sessionmaker[Session]) -> list[int]:
    """Fail jobs whose workers died ``max_attempts`` times, so they stop being retried;
    their ids (``app.retrain.runner.note_saved_version`` names what they left)."""
    with session_scope(sessions) as session:
        return repo.fail_exhausted_jobs(
            session,
            "the worker running this job stopped without finishing it on every attempt "
            "(killed, out of memory, or lost its database connection); see the log tail",
        )


def schedule_periodic(
    sessions: sessionmaker[Session], model: str, every_s: float, now: datetime | None = None
) -> RetrainJob | None:
    """Enqueue a ``log+base``/``auto`` job for ``model`` when its newest job is ``every_s`` old.

    Many workers run this; the unique ``dedupe_key`` (model + period slot) lets
    the database keep exactly one of their inserts per slot. While an identical job
    (a request's or the last slot's) is still queued or running, the slot is skipped:
    that job will read the log as it is when it runs, so a twin behind it would only
    train the same model on the same data once more.
    """
    now = now or utcnow()
    with session_scope(sessions) as session:
        last = repo.latest_job_created_at(session, model)
    if last is not None and (now - last).total_seconds() < every_s:
        return None
    slot = int(now.timestamp() // every_s)
    try:
        job = enqueue(
            sessions,
            RetrainRequest(model=model),
            trigger="schedule",
            dedupe_key=f"schedule:{model}:{slot}",
            now=now,
            unless_active=True,
        )
    except IntegrityError:
        return None  # another worker scheduled this slot first
    except DuplicateJob as twin:
        log_skip_once(f"periodic retrain of {model}", twin)
        return None
    log.info("scheduled periodic retrain job %d for %s", job.id, model)
    return job


#: Per schedule, the job whose twin was last logged as skipped (``log_skip_once``).
_SKIPS_LOGGED: dict[str, int] = {}


def log_skip_once(what: str, twin: DuplicateJob) -> None:
    """Log that ``what`` was skipped for ``twin``, once per twin job: a worker checks at
    every poll (2 s by default), so a long job behind a short period logged the same
    line hundreds of times an hour, per worker."""
    if _SKIPS_LOGGED.get(what) != twin.job_id:
        _SKIPS_LOGGED[what] = twin.job_id
        log.info("%s skipped: job %d is still %s", what, twin.job_id, twin.status)


class JobLog:
    """The job's own log: kept as a bounded tail for the row, echoed to the worker log.

    ``earlier``: the tail the job's earlier attempts left in the row. Its last
    ``earlier_lines`` stay ahead of this attempt's own, so a takeover does not
    wipe what shows why the attempt before it stopped (killed mid-epoch,
    stopped by a database error).

    Pinned lines (the first ``PINNED_LOG_LINES`` added with ``pin``; pin only an
    attempt's opening lines, which come first anyway) stay ahead of the attempt's
    tail however long it runs: who claimed it, and why it was taken over, scrolled out
    of a long refit's tail. A line saying how many were left out separates them.
    """

    def __init__(
        self,
        job_id: int,
        lines: int = LOG_TAIL_LINES,
        earlier: str | None = None,
        earlier_lines: int = EARLIER_LOG_LINES,
    ) -> None:
        self.job_id = job_id
        self._earlier = (earlier or "").splitlines()[-earlier_lines:] if earlier_lines else []
        self._lines: deque[str] = deque(maxlen=lines)
        self._pinned: list[str] = []
        self._dropped = 0  # lines of this attempt scrolled out of ``_lines``
        self._lock = threading.Lock()

    def add(self, message: str, level: int = logging.INFO, pin: bool = False) -> None:
        with self._lock:
            if pin and len(self._pinned) < PINNED_LOG_LINES:
                self._pinned.append(_stamped(message))
            else:
                self._dropped += len(self._lines) == self._lines.maxlen
                self._lines.append(_stamped(message))
        log.log(level, "job %d: %s", self.job_id, message)

    def text(self, then: str | None = None) -> str:
        """The tail for the row; ``then``: a line to write after it without adding it yet,
        for a write that must say what it does only if it lands (``JobLease.hand_back``)."""
        with self._lock:
            gap = []
            if self._pinned and self._dropped:
                plural = "s" if self._dropped != 1 else ""
                gap.append(f"... {self._dropped} line{plural} of this attempt not kept ...")
            lines = [*self._earlier, *self._pinned, *gap, *self._lines]
        return "\n".join(lines if then is None else [*lines, _stamped(then)])


def _stamped(message: str) -> str:
    return f"{repo.log_time(utcnow())} {message}"  # UTC, and says so (as every time)


class JobLease:
    """A claimed job: renews its lease in the background and fences every write.

    Use as a context manager around the job's work. ``check()`` (called at
    every epoch) raises ``JobAborted`` once the job was cancelled, the lease
    was lost, the worker was asked to stop, or the attempt ran past ``max_run_s``.
    ``log_tail``: the claimed row's, what earlier attempts logged (``JobLog``).

    The time limit: the lease is renewed by a thread, so a step that never returns (a
    deadlocked fit, a read of a hung file system) held the job for ever, "running".
    Past ``max_run_s`` (measured on this process's ``monotonic`` clock, which no clock
    adjustment moves) the thread stops renewing and says why in the job's log; on the
    ``last_attempt`` it fails the job with that reason, else the lease expires and
    another worker takes the job over, as after a crash (the attempt counts).
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        fence: repo.JobFence,
        lease_s: float,
        stop: threading.Event,
        clock: Callable[[], datetime] = utcnow,
        log_tail: str | None = None,
        max_run_s: float | None = None,
        last_attempt: bool = False,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sessions = sessions
        self.fence = fence
        self.lease_s = lease_s
        self.stop = stop
        self.clock = clock
        self.log = JobLog(fence.job_id, earlier=log_tail)
        self.max_run_s = max_run_s
        self.last_attempt = last_attempt
        self._monotonic = monotonic
        self._started = monotonic()
        self._overtime_lock = threading.Lock()
        self._overtime: JobAborted | None = None  # set once, by the first to see it
        self._abort: JobAborted | None = None
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_progress = 0.0
        self.progress: dict[str, Any] = {}  # merged across reports: phase + last epoch
        #: When the lease expires, by this worker's clock: the claim's or last renewal's
        #: time plus ``lease_s`` (the row's expiry is the database's clock, out of reach
        #: when it is needed: the database is away).
        self.expires_about = clock() + timedelta(seconds=lease_s)

    def __enter__(self) -> JobLease:
        self._started = self._monotonic()
        self._thread = threading.Thread(
            target=self._renew_loop, name=f"lease-job-{self.fence.job_id}", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)

    # -- the lease ---------------------------------------------------------------------

    def _renew_loop(self) -> None:
        # Renewing at a third of the lease survives one or two slow renewals. Each failure
        # says how many in a row and when the lease runs out: an operator reading a
        # database outage in the worker's log sees how close the job is to a takeover.
        failed = 0
        while not self._done.wait(self.lease_s / 3):
            if self._past_limit():
                return  # no more renewals: the job is failed, or taken over at expiry
            try:
                with session_scope(self.sessions) as session:
                    held = repo.renew_job_lease(session, self.fence, self.lease_s)
            except SQLAlchemyError as exc:  # keep trying; the fence protects the outcome
                failed += 1
                log.warning(
                    "job %d: lease renewal failed (%s in a row; the lease runs out about %s "
                    "unless renewed): %s",
                    self.fence.job_id,
                    failed,
                    repo.log_time(self.expires_about),
                    error_line(exc),
                )
                continue
            if failed:
                log.info(
                    "job %d: lease renewed after %d failed renewal(s)", self.fence.job_id, failed
                )
                failed = 0
            self._renewed(held)
            if not held:
                self._mark_aborted()
                return

    def _past_limit(self) -> bool:
        """Whether the attempt ran past ``max_run_s``; the first call that finds it so
        stops the attempt (``_run_out``), and every later one says True at once."""
        with self._overtime_lock:
            if self._overtime is None:
                elapsed = self._monotonic() - self._started
                if self.max_run_s is None or elapsed <= self.max_run_s:
                    return False
                self._overtime = self._run_out()
            return True

    def _run_out(self) -> JobAborted:
        """Stop an attempt past its limit: fail the job on its last attempt, else leave it
        to its lease (no longer renewed) and so to the next worker, saying why either way."""
        assert self.max_run_s is not None
        reason = f"ran past its {self.max_run_s / 3600:.4g} h limit (GENREC_JOB_MAX_HOURS)"
        if self.last_attempt:
            self.log.add(f"{reason}; failed: it was the last attempt", logging.ERROR)
            try:
                self.finish("failed", error=f"{reason} on its last attempt")
            except SQLAlchemyError as exc:  # the lease expires; the sweep fails it then
                log.warning("job %d: failure not recorded: %s", self.fence.job_id, error_line(exc))
            return JobAborted(reason, "failed")
        self.log.add(
            f"{reason}; its lease is no longer renewed: another worker takes the job over "
            f"when it expires (within {self.lease_s:g} s)",
            logging.ERROR,
        )
        self.save_log()
        return JobAborted(reason, "interrupted")

    def _mark_aborted(self) -> JobAborted:
        """Why our fenced write matched nothing: cancelled, or someone else holds the job."""
        try:
            with session_scope(self.sessions) as session:
                row = repo.get_job(session, self.fence.job_id)
        except SQLAlchemyError:
            row = None
        if row is not None and row.status == "cancelled":
            self._abort = JobAborted("the job was cancelled", "cancelled")
        else:
            holder = (
                f" (now {row.status}, worker {row.worker_id}, attempt {row.attempts})"
                if row
                else ""
            )
            self._abort = JobAborted(f"lost the lease on the job{holder}", "lost")
        return self._abort

    def lost_to(self) -> JobAborted:
        """Why a fenced write found the job no longer ours: cancelled, or taken over."""
        return self._mark_aborted()

    def check(self) -> None:
        """Raise ``JobAborted`` when the job must stop now."""
        if self._past_limit() and self._overtime is not None:
            raise self._overtime
        if self._abort is not None:
            raise self._abort
        if self.stop.is_set():
            # Not "the job goes back to the queue": that is the hand-back's to say, once
            # it landed (``hand_back``); with the database away it does not.
            raise JobAborted("the worker is shutting down", "stopping")

    def still_held(self) -> bool:
        """Renew now and say whether we still hold the job (before saving or promoting)."""
        if self._past_limit():
            return False
        with session_scope(self.sessions) as session:
            held = repo.renew_job_lease(session, self.fence, self.lease_s)
        self._renewed(held)
        if not held:
            self._mark_aborted()
        return held

    def _renewed(self, held: bool) -> None:
        if held:
            self.expires_about = self.clock() + timedelta(seconds=self.lease_s)

    # -- fenced writes -----------------------------------------------------------------

    def report(self, progress: dict[str, Any], force: bool = False) -> None:
        """Merge ``progress`` into the job's, write it and the log tail (throttled); ``check()``."""
        self.progress.update(progress)
        now = time.monotonic()
        if force or now - self._last_progress >= PROGRESS_INTERVAL_S:
            self._last_progress = now
            if not self.save_log():
                self._mark_aborted()
        self.check()

    def save_log(self) -> bool:
        """Write the progress and the log tail now; False when the job is no longer ours.

        Best effort (a database error is logged and counts as held: the lease
        decides), and unchecked: also the last word of an attempt that stops
        without recording an outcome.
        """
        try:
            with session_scope(self.sessions) as session:
                return repo.write_job_progress(
                    session, self.fence, self.clock(), dict(self.progress), self.log.text()
                )
        except SQLAlchemyError as exc:
            log.warning("job %d: progress not recorded: %s", self.fence.job_id, error_line(exc))
            return True

    def finish(self, status: Literal["succeeded", "failed"], **outcome: Any) -> bool:
        """Record the outcome; False (nothing written) if the job is no longer ours.

        A database error is retried after each pause of ``OUTCOME_RETRY_DELAYS_S`` (the
        lease stays renewed), then raised: the caller must not take it for the job's
        failure, since what the job saved is still there for its next attempt. A try
        whose commit landed although its connection failed is recognised by the next
        one (the row already ended as ``status`` under this attempt).
        """
        progress = repo.ended_progress(self.progress, status)
        for delay in (*OUTCOME_RETRY_DELAYS_S, None):
            try:
                with session_scope(self.sessions) as session:
                    if repo.finish_job(
                        session,
                        self.fence,
                        self.clock(),
                        status=status,
                        log_tail=self.log.text(),
                        progress=progress,
                        **outcome,
                    ):
                        return True
                    row = repo.get_job(session, self.fence.job_id)
                return row is not None and self._ended_by_me(row, status)
            except SQLAlchemyError as exc:
                if delay is None:
                    raise
                self.log.add(
                    f"recording the outcome ({status}) failed: {error_line(exc)}; "
                    f"trying again in {delay:g} s",
                    logging.WARNING,
                )
                time.sleep(delay)
        raise AssertionError("unreachable: the last try returns or raises")

    def record_if_cancelled(self, **outcome: Any) -> bool:
        """After ``finish`` found the job no longer ours: if it was cancelled while this
        attempt finished its work, write that work (``result_version``, ``promoted``,
        ...) onto the cancelled job and say True.

        Why: the cancel can land after the version was saved, even promoted; the
        cancelled job must show the version it left (in production, maybe), not read
        as a job that did nothing.
        """
        with session_scope(self.sessions) as session:
            row = repo.get_job(session, self.fence.job_id)
            if row is None or not self._ended_by_me(row, "cancelled"):
                return False
            version, promoted = outcome.get("result_version"), outcome.get("promoted")
            self.log.add(
                f"the job was cancelled after version {version} was saved"
                f"{' and promoted to production' if promoted else ' (not promoted)'}; "
                "kept as its result",
                logging.WARNING,
            )
            return repo.record_cancelled_result(
                session, self.fence, self.clock(), log_tail=self.log.text(), **outcome
            )

    def save_cancelled_log(self) -> bool:
        """Write the log tail onto the job this attempt held when it was cancelled: its
        last lines ("stopped: the job was cancelled") came after the cancel, so no fenced
        write took them, and the API and dashboard showed a log that ended mid-run.
        Best effort, as ``save_log``; False when the job was not cancelled under this
        attempt (taken over, say)."""
        try:
            with session_scope(self.sessions) as session:
                return repo.write_cancelled_log(session, self.fence, self.clock(), self.log.text())
        except SQLAlchemyError as exc:
            log.warning("job %d: log not recorded: %s", self.fence.job_id, error_line(exc))
            return False

    def _ended_by_me(self, row: RetrainJob, status: str) -> bool:
        return (row.status, row.worker_id, row.attempts) == (
            status,
            self.fence.worker_id,
            self.fence.attempt,
        )

    def release(self, note: str | None = None) -> bool:
        """Give the job back to the queue (shutdown), attempt and all; False if it was not
        ours any more. ``note``: the log's last line, written with the release (so in the
        row only if the job was released), and added to the log once it was."""
        with session_scope(self.sessions) as session:
            released = repo.release_job(session, self.fence, self.clock(), self.log.text(note))
        if released and note is not None:
            self.log.add(note)
        return released

    def hand_back(self, note: str | None = None) -> bool:
        """``release``, retried after the pauses of ``HAND_BACK_RETRY_DELAYS_S`` and given up
        after ``HAND_BACK_BUDGET_S`` in all: a stopping worker must not hang on a database
        that is away. True: released; False: not ours any more (cancelled, taken over);
        ``HandBackFailed``: not released, the job stays leased to this attempt until its
        lease expires.

        The tries run on a thread of their own, so that a query that never returns (a
        black-holed connection) is waited for only as long as the budget; such a try may
        still land afterwards, as the worker exits, and then the job is queued after all.
        """
        budget = HAND_BACK_BUDGET_S
        deadline = time.monotonic() + budget
        released: list[bool] = []
        errors: list[SQLAlchemyError] = []

        def tries() -> None:
            for delay in (*HAND_BACK_RETRY_DELAYS_S, None):
                try:
                    released.append(self.release(note))
                    return
                except SQLAlchemyError as exc:
                    errors.append(exc)
                    if delay is None or time.monotonic() + delay >= deadline:
                        return
                    time.sleep(delay)

        thread = threading.Thread(
            target=tries, name=f"hand-back-job-{self.fence.job_id}", daemon=True
        )
        thread.start()
        thread.join(budget)
        alive = thread.is_alive()  # before reading ``released``: a try may land meanwhile
        if released:
            return released[0]
        if alive or not errors:
            raise HandBackFailed(f"no answer from the database within {budget:g} s")
        raise HandBackFailed(f"database unreachable: {error_line(errors[-1])}")
