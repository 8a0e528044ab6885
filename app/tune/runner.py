"""Run a tune job: the lead worker (holds the job) and helper workers (join its study).

Lead (``run_tune_job``, under the job's lease like any retrain job)::

    read the log up to a cutoff (recorded in progress, so helpers read the same)
    -> leave out the candidates that cannot train on the data (``candidates.screen``)
    -> open the study, enqueue one first trial per candidate (only the lead does this)
    -> open the search window (``search_until``) -> run trials until it closes
    -> wait for trials other workers are still running -> leaderboard
    -> re-validate the finalists (the budget's last share, lead only)
    -> refit the winner -> gate -> save -> promote (if asked and the gate passes) -> finish

Helper (``help_tune_job``, any worker that finds no queued job): while a tune
job's window is open, open the same study (no enqueueing), read the same log
slice, and run trials until the window closes or the job stops running. A
helper never writes to the job row; Optuna's storage hands each trial a
number and each process its own trials, so trials are never run twice. It holds
no lease, so ``HelperWatch`` bounds it as ``JobLease`` bounds the lead: past the
job's time limit, or once the job has ended, it gives its running trial up (failed
in the study) and takes no other.

Exactly once in effect, as for retrain jobs: the version records
``training.job_id``; an attempt that finds one (its predecessor died after
saving) finishes it; a retry whose window has closed goes straight to the
leaderboard over the trials already in the study.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
import zlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import optuna
from optuna.trial import TrialState
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app import repository as repo
from app.core.config import Settings
from app.core.db import session_scope
from app.core.poller import Poller
from app.db_models import RetrainJob
from app.retrain.export import job_cutoff, read_log
from app.retrain.lifecycle import JobLease, error_line, utcnow
from app.retrain.runner import (
    JobContext,
    epoch_progress,
    find_job_version,
    job_outcome,
    promote_if,
    record_success,
)
from app.tune.jobs import TuneRequest
from app.tune.study import open_study_storage, study_name
from app.tune.winner import refit_and_gate
from models_store import Manifest, iso_utc
from training.data.interactions import Interactions
from training.models import model_class
from training.models.base import EpochCallback, EpochReport
from training.pipeline import save_trained
from training.tuning.candidates import winner_data
from training.tuning.confirm import Finalist, Fold, fold_line
from training.tuning.refit import describe_lengths
from training.tuning.report import Entry, TrialRecord
from training.tuning.search import Search, confirm, open_search, search_trials, summarise

log = logging.getLogger(__name__)

#: How often the lead looks whether other workers' trials have finished.
WAIT_POLL_S = 1.0
#: After closing the window, how long the lead allows a helper that was just starting a
#: trial to have it recorded (then "no trial running" means "no more trials").
WINDOW_MARGIN_S = 2.0
#: The lead waits at most this long past the window for helpers' trials (a helper
#: stops its fit at the first epoch past the window; one killed mid-trial never ends).
MAX_WAIT_S = 120.0


def _log_source(settings: Settings, cutoff: datetime, request: TuneRequest) -> Interactions:
    """The job's log slice; a ratings search reads only a mixed log's rated rows."""
    # A database error stays one: "interrupted".
    return read_log(settings, cutoff, ratings_only=request.task == "ratings")


def _study_progress(search: Search) -> dict[str, Any]:
    """Trials of every worker: how many ended, how many run, the best so far."""
    trials = search.study.get_trials(deepcopy=False)
    ended = [t for t in trials if t.state.is_finished()]
    complete = [t for t in ended if t.state == TrialState.COMPLETE and t.value is not None]
    higher = search.split.validation.higher_is_better
    best = (max if higher else min)(complete, key=lambda t: float(t.value or 0.0), default=None)
    return {
        "trials_done": len(ended),
        "trials_running": sum(t.state == TrialState.RUNNING for t in trials),
        "workers": len(
            {str(t.user_attrs.get("worker")) for t in ended if "worker" in t.user_attrs}
        ),
        "best": None
        if best is None
        else {"model": best.params.get("model"), "value": best.value, "trial": best.number},
        "dropped": search.dropped(),
    }


def run_tune_job(job: RetrainJob, lease: JobLease, ctx: JobContext) -> str:
    """Run the claimed tune ``job`` as its lead; how it ended (as ``run_claimed_job``)."""
    jlog = lease.log
    jlog.add(
        f"claimed by {lease.fence.worker_id} (attempt {job.attempts} of {job.max_attempts}): "
        f"tune {job.params}",
        pin=True,
    )

    def work() -> str:
        # Inside the job's outcome: params it cannot read fail the job, not the worker.
        request = TuneRequest.from_params(job.params)
        manifest, gate, result = _search_and_save(job, request, lease, ctx)
        decided = request.promote and bool(gate.get("promote"))
        promoted, error = promote_if(lease, ctx.store, manifest, gate, decided)
        if not request.promote:
            jlog.add("not promoted: the request did not ask to (promote: false)")
        return record_success(
            lease,
            result_version=manifest.version,
            promoted=promoted,
            gate=gate,
            error=error,
            result=result,
        )

    return job_outcome(job, lease, work)


def _search_and_save(
    job: RetrainJob, request: TuneRequest, lease: JobLease, ctx: JobContext
) -> tuple[Manifest, dict[str, Any], dict[str, Any]]:
    jlog = lease.log
    previous = job.progress or {}
    # A retry reads the same log slice as the attempt that started the study.
    recorded = previous.get("cutoff")
    cutoff = datetime.fromisoformat(recorded) if recorded else job_cutoff(ctx.settings)
    lease.report({"phase": "exporting", "cutoff": iso_utc(cutoff)}, force=True)
    data = _log_source(ctx.settings, cutoff, request)
    jlog.add(
        f"data: the interaction log, {len(data):,} interactions, {data.n_users:,} users, "
        f"{data.n_items:,} items, cutoff {iso_utc(cutoff)}"
    )
    settings = request.search_settings()
    storage = open_study_storage(ctx.settings.database_url)
    search = open_search(
        data, settings, storage=storage, study_name=study_name(job.id), enqueue_first=True
    )
    metric = search.split.validation.metric
    jlog.add(f"study {search.study.study_name}: {', '.join(search.models)} on {metric}")

    # The search ends at the same moment on every attempt (a retry searches what is left),
    # by the database's clock: helpers on other machines compare the window with it.
    now = _database_now(ctx)
    planned = previous.get("search_until")
    until = (
        datetime.fromisoformat(planned)
        if planned
        else now + timedelta(seconds=settings.search_seconds)
    )
    seconds = (until - now).total_seconds()
    lease.report(
        {"phase": "searching", "metric": metric, "search_until": iso_utc(until)}, force=True
    )
    if seconds > 0:
        _set_window(lease, ctx, until)

    def on_trial(record: TrialRecord, left: float) -> None:
        jlog.add(_trial_line(record, left))
        progress = {"phase": "searching", "metric": metric, "seconds_left": round(left, 1)}
        lease.report({**progress, **_study_progress(search)}, force=True)

    def on_drop(model: str, why: str) -> None:
        jlog.add(f"dropped {model}: {why}")
        lease.report({"dropped": search.dropped()}, force=True)

    spent = search_trials(
        search,
        seconds=seconds,
        on_trial=on_trial,
        trial_attrs={"worker": lease.fence.worker_id},
        epoch_callbacks=[_stop_at_epochs(lease)],
        on_drop=on_drop,
    )
    if seconds > 0:
        _set_window(lease, ctx, None)  # helpers stop after their current trial
    _wait_for_helpers(search, lease)
    result = summarise(search, spent)
    # The rest of the budget re-validates the finalists, in the lead alone (a few fits).
    end = until + timedelta(seconds=settings.budget_seconds - settings.search_seconds)
    if settings.folds > 1:
        lease.report({"phase": "confirming", "metric": metric}, force=True)

    def on_fold(finalist: Finalist, fold: Fold) -> None:
        jlog.add(fold_line(finalist, fold))
        lease.check()

    left = (end - _database_now(ctx)).total_seconds()
    result = confirm(search, result, max(0.0, left), on_fold=on_fold)
    report = result.report
    winner = result.winner
    assert winner.settings is not None
    board = " > ".join(f"{e.model} {e.value:.4f}" for e in result.board if e.value is not None)
    jlog.add(f"leaderboard ({metric}): {board}")
    existing = find_job_version(ctx.store, winner.model, job.id)
    if existing is not None:
        jlog.add(f"version {existing.version} was saved by an earlier attempt; finishing it")
        manifest, gate = existing, dict(existing.training.get("gate") or {})
    else:
        manifest, gate = _refit_and_save(job, lease, ctx, data, cutoff, winner, report)
    outcome = {"model": manifest.model, "version": manifest.version, **report}
    return manifest, gate, outcome


def _stop_at_epochs(lease: JobLease) -> EpochCallback:
    """At every epoch of the lead's trials, a (throttled) fenced write of the progress and
    log tail, which notices a cancel at once, and the lease's check: a cancelled job, a
    lost lease or a stopping worker stops the trial at its next epoch (failed in the
    study), as a retrain job's fit stops, not when the trial ends."""

    def on_epoch(_report: EpochReport) -> None:
        lease.report({})

    return on_epoch


def _database_now(ctx: JobContext) -> datetime:
    """The database's clock, which the search window is set and compared by."""
    with session_scope(ctx.sessions) as session:
        return repo.database_time(session)


def _set_window(lease: JobLease, ctx: JobContext, until: datetime | None) -> None:
    with session_scope(ctx.sessions) as session:
        held = repo.set_search_window(session, lease.fence, utcnow(), until)
    if not held:
        lease.still_held()
        lease.check()


def _wait_for_helpers(search: Search, lease: JobLease) -> None:
    """Let trials other workers are running end, so the leaderboard counts them.

    Called once the window is closed: a helper then starts no new trial (it
    looks after each one); one that was just starting one gets
    ``WINDOW_MARGIN_S`` to have it recorded as running.
    """
    time.sleep(WINDOW_MARGIN_S)
    waited = WINDOW_MARGIN_S
    while True:
        with warnings.catch_warnings():  # "experimental" in Optuna 5
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(search.study)  # trials of dead workers
        progress = _study_progress(search)
        done = not progress["trials_running"] or waited >= MAX_WAIT_S
        phase = "ranking" if done else "waiting for other workers' trials"
        lease.report({"phase": phase, **progress}, force=True)
        if done:
            return
        time.sleep(WAIT_POLL_S)
        waited += WAIT_POLL_S


def _refit_and_save(
    job: RetrainJob,
    lease: JobLease,
    ctx: JobContext,
    data: Interactions,
    cutoff: datetime,
    winner: Entry,
    report: dict[str, Any],
) -> tuple[Manifest, dict[str, Any]]:
    jlog = lease.log
    model = winner.model
    data = winner_data(model, data)  # a rating model: a mixed log's ratings alone
    overrides = dict(winner.settings or {})
    if "device" in model_class(model).Config().to_dict() and ctx.device.type != "cpu":
        overrides.setdefault("device", str(ctx.device))
    lengths = describe_lengths(winner.lengths)
    chosen = f" ({lengths}, as validation chose)" if lengths else ""
    jlog.add(
        f"refitting the winner {model}: on the 10% slice for the gate, then on all the data{chosen}"
    )
    lease.report({"phase": "refitting", "winner": model}, force=True)
    refit, gate = refit_and_gate(
        ctx.store,
        model,
        overrides,
        data,
        ctx.device,
        lengths=winner.lengths,
        callbacks=[epoch_progress(lease, None, phase="refitting")],
    )
    jlog.add(f"gate: {gate['reason']} -> {'passes' if gate['promote'] else 'does not pass'}")
    lease.report({"phase": "saving"}, force=True)
    if not lease.still_held():
        lease.check()
    manifest = save_trained(
        ctx.store,
        model,
        refit.to_save(),
        data,
        "log",
        log_read_at=cutoff,
        training={
            "job_id": job.id,
            "attempt": job.attempts,
            "tuning": report,
            "gate": gate,
            "refit": refit.record,
        },
    )
    jlog.add(f"saved {model} version {manifest.version}")
    return manifest, gate


def _trial_line(record: TrialRecord, left: float) -> str:
    value = "-" if record.value is None else f"{record.value:.4f}"
    note = f" ({record.note})" if record.note else ""
    return f"trial {record.number} {record.model} {record.state} {value}{note}, {left:.0f}s left"


# --------------------------------------------------------------------------- helpers


def help_tune_job(
    job: RetrainJob,
    ctx: JobContext,
    worker_id: str,
    stop: threading.Event,
    max_run_s: float | None = None,
    monotonic: Callable[[], float] = time.monotonic,
) -> str:
    """Run trials of ``job``'s study until its window closes; ``helped``, ``help failed``,
    or ``help stopped`` (``HelperWatch``: past ``max_run_s``, the job's time limit, on
    ``monotonic``, or the job ended while this helper was in it).

    What is left of the window is read by the database's clock, as its lead set it: by
    this worker's, a clock minutes off joined a closed search or left an open one."""
    cutoff = (job.progress or {}).get("cutoff")
    if job.search_until is None or cutoff is None:
        return "not ready"
    watch = HelperWatch(
        ctx.sessions,
        job.id,
        worker_id,
        poll_s=ctx.settings.job_lease_s / 3,
        max_run_s=max_run_s,
        monotonic=monotonic,
    )
    try:
        with watch:
            seconds = (repo.as_utc(job.search_until) - _database_now(ctx)).total_seconds()
            log.info("tune job %d: joining its search for %.0f s", job.id, seconds)
            request = TuneRequest.from_params(job.params)
            data = _log_source(ctx.settings, datetime.fromisoformat(cutoff), request)
            storage = open_study_storage(ctx.settings.database_url)
            search = open_search(
                data,
                request.search_settings(),
                storage=storage,
                study_name=study_name(job.id),
                enqueue_first=False,
                sampler_seed=helper_seed(request.seed, worker_id),
            )
            watch.follow(storage, search.study.study_name)
            search_trials(
                search,
                seconds=seconds,
                on_trial=lambda record, left: log.info(
                    "tune job %d: %s", job.id, _trial_line(record, left)
                ),
                trial_attrs={"worker": worker_id},
                should_stop=lambda: (
                    stop.is_set() or watch.stopped() or not _still_searching(ctx.sessions, job.id)
                ),
                epoch_callbacks=[watch.check],
                on_drop=lambda model, why: log.info(
                    "tune job %d: dropped %s: %s", job.id, model, why
                ),
            )
    except Exception as exc:  # a helper's failure must not stop the worker; the lead carries on
        if watch.stopped():  # its trial, given up, failed in its hands: that is the stop
            log.info("tune job %d: out of its search (%s)", job.id, watch.reason)
            return "help stopped"
        if isinstance(exc, SQLAlchemyError):  # the database's, not the search's: one line
            log.warning("tune job %d: helping failed: %s", job.id, error_line(exc))
        else:
            log.exception("tune job %d: helping failed", job.id)
        return "help failed"
    if watch.stopped():
        log.info("tune job %d: out of its search (%s)", job.id, watch.reason)
        return "help stopped"
    log.info("tune job %d: the search window closed; leaving it to its lead", job.id)
    return "helped"


class HelpStopped(Exception):
    """Raised at a helper's epoch once its ``HelperWatch`` fired: fails the trial (Optuna
    marks it failed) and leaves the search, as ``JobAborted`` stops a lead's fit."""


class HelperWatch:
    """What bounds a helper, which holds no lease for ``JobLease`` to bound: a thread that
    looks every ``poll_s`` whether the helper ran past ``max_run_s`` (the job's time
    limit, on this process's ``monotonic`` clock, as the lead's) or whether the job has
    ended (succeeded, failed, cancelled: its lead no longer needs the trials).

    Once either holds it says why (``reason``), makes ``stopped()`` true (no next trial)
    and ``check`` raise ``HelpStopped`` (the running fit stops at its next epoch), and
    fails this helper's running trials in the study (``follow``) with the reason: a fit
    hung inside an epoch never reaches a callback, and Optuna's heartbeat thread would
    keep its trial "running" for ever, which the lead waits for. The hung thread itself
    cannot be stopped from here, as a hung lead's cannot; what waking up later finds is
    a finished trial (an error the helper reports as ``help stopped``).
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        job_id: int,
        worker_id: str,
        poll_s: float,
        max_run_s: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sessions = sessions
        self.job_id = job_id
        self.worker_id = worker_id
        self.poll_s = poll_s
        self.max_run_s = max_run_s
        self._monotonic = monotonic
        self._started = monotonic()
        self.reason: str | None = None
        self._fired = threading.Event()
        self._lock = threading.Lock()
        self._study: tuple[optuna.storages.BaseStorage, str] | None = None
        self._poller = Poller(f"helper-job-{job_id}", self._look, poll_s)

    def __enter__(self) -> HelperWatch:
        self._started = self._monotonic()
        self._poller.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._poller.stop()

    def follow(self, storage: optuna.storages.BaseStorage, name: str) -> None:
        """The study whose trials of this helper are failed when the watch fires."""
        with self._lock:
            self._study = (storage, name)
        if self._fired.is_set():  # fired while the study was being opened
            self._give_up_trials()

    def stopped(self) -> bool:
        return self._fired.is_set()

    def check(self, _report: EpochReport | None = None) -> None:
        """Raise ``HelpStopped`` once the watch fired (an epoch callback of every fit)."""
        if self._fired.is_set():
            raise HelpStopped(self.reason)

    def _look(self) -> None:
        """One look (``Poller``'s poll): once fired, the watch has nothing left to do."""
        if self._fired.is_set():
            return
        reason = self._why_stop()
        if reason is not None:
            self.reason = reason
            self._fired.set()
            log.warning("tune job %d: leaving its search: %s", self.job_id, reason)
            self._give_up_trials()

    def _why_stop(self) -> str | None:
        if self.max_run_s is not None and self._monotonic() - self._started > self.max_run_s:
            return f"ran past its {self.max_run_s / 3600:.4g} h limit (GENREC_JOB_MAX_HOURS)"
        try:
            with session_scope(self.sessions) as session:
                row = repo.get_job(session, self.job_id)
        except SQLAlchemyError as exc:  # the database away: look again at the next poll
            log.warning("tune job %d: cannot read the job: %s", self.job_id, error_line(exc))
            return None
        if row is None:
            return "the job was deleted"
        if row.status != "running":
            return f"the job ended ({row.status})"
        return None

    def _give_up_trials(self) -> None:
        """Fail this helper's running trials in the study, saying why (best effort: a
        trial that ended meanwhile is left as it ended)."""
        with self._lock:
            followed = self._study
        if followed is None:
            return
        storage, name = followed
        note = f"the helper gave it up: {self.reason}"
        try:
            study_id = storage.get_study_id_from_name(name)
            running = storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
            for trial in running:
                if trial.user_attrs.get("worker") != self.worker_id:
                    continue
                trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
                try:
                    storage.set_trial_user_attr(trial_id, "error", note)
                    storage.set_trial_state_values(trial_id, TrialState.FAIL)
                except optuna.exceptions.UpdateFinishedTrialError:
                    continue  # it ended by itself meanwhile
                log.warning("tune job %d: trial %d failed: %s", self.job_id, trial.number, note)
        except SQLAlchemyError as exc:  # its heartbeat still beats; the lead waits it out
            log.warning("tune job %d: trials not given up: %s", self.job_id, error_line(exc))


def helper_seed(seed: int, worker_id: str) -> int:
    """A sampler seed of the helper's own (the lead samples with the request's seed):
    two samplers with one seed that see the same trials would draw the same settings."""
    return (seed + 1 + zlib.crc32(worker_id.encode())) % 2**32


def _still_searching(sessions: sessionmaker[Session], job_id: int) -> bool:
    with session_scope(sessions) as session:
        row = repo.get_job(session, job_id)
    return row is not None and row.status == "running" and row.search_until is not None
