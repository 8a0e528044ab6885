"""Run one claimed job: export -> train (progress per epoch) -> gate -> save -> promote -> finish.

Exactly-once in effect, on top of at-least-once claiming: every version a
job writes records ``training.job_id``; an attempt that finds such a version
(its predecessor died after saving) finishes that version instead of
training another, and only the holder of the current lease can save,
promote or finish (each step is preceded by a fenced renewal). The order is
save -> promote -> finish, so a job marked ``succeeded`` with
``promoted: true`` really moved the alias.

A database error is the database's, not the job's: the outcome write is
retried for a few seconds (``JobLease.finish``), and one that still fails,
like one at any other step, stops the attempt without an outcome
("interrupted"). The job stays leased to it until the lease expires; then
its next attempt finishes the version this one saved (or trains, if it had
saved none), and a job whose every attempt ends so is failed by the
exhaustion sweep. It is never recorded as failed beside a saved version.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import torch
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app import repository as repo
from app.core.config import Settings
from app.core.db import session_scope
from app.db_models import RetrainJob
from app.retrain.export import Exported, export_interactions, job_cutoff
from app.retrain.gate import GateResult, gate_figures
from app.retrain.lifecycle import (
    HandBackFailed,
    JobAborted,
    JobLease,
    PromotePolicy,
    error_line,
)
from models_store import AliasChanged, Manifest, ModelNotFound, ModelStore, StoreError, iso_utc
from training.models import model_class
from training.models.base import EpochCallback, EpochReport
from training.pipeline import (
    TrainResult,
    holdout_split,
    save_trained,
    train_model,
    validation_on,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobContext:
    """What every job of a worker shares."""

    settings: Settings
    store: ModelStore
    sessions: sessionmaker[Session]
    device: torch.device
    engine: Engine | None = None  # disposed when the worker exits


def run_claimed_job(job: RetrainJob, lease: JobLease, ctx: JobContext) -> str:
    """Run ``job`` under ``lease``; how it ended (succeeded/failed/cancelled/lost/stopping/
    interrupted)."""
    jlog = lease.log
    jlog.add(
        f"claimed by {lease.fence.worker_id} (attempt {job.attempts} of {job.max_attempts}): "
        f"{job.model} data={job.data} promote={job.promote} params={job.params}",
        pin=True,
    )

    def work() -> str:
        existing = find_job_version(ctx.store, job.model, job.id)
        if existing is not None:
            jlog.add(f"version {existing.version} was saved by an earlier attempt; finishing it")
            manifest, gate = existing, dict(existing.training.get("gate") or {})
            lease.progress.update(saved_progress(existing))
        else:
            manifest, gate = _train_and_save(job, lease, ctx)
        promoted, error = promote_if(lease, ctx.store, manifest, gate, bool(gate.get("promote")))
        return record_success(
            lease, result_version=manifest.version, promoted=promoted, gate=gate, error=error
        )

    return job_outcome(job, lease, work)


def job_outcome(job: RetrainJob, lease: JobLease, work: Callable[[], str]) -> str:
    """Run a claimed job's ``work``; how it ended.

    The one place, for retrain and tune jobs alike, that turns a stop
    (``JobAborted``: cancelled, lost, the worker stopping, past the attempt's time
    limit: ``failed`` or ``interrupted``) or an error into the
    job's outcome, so the worker lives on whatever the job did. A database
    error is not the job's failure ("interrupted": the module's docstring).
    """
    jlog = lease.log
    try:
        return work()
    except JobAborted as exc:
        jlog.add(f"stopped: {exc.reason}", logging.WARNING)
        if exc.kind == "stopping":
            return hand_back(job, lease)
        if exc.kind == "cancelled":  # the row's log, not only the worker's, says so
            lease.save_cancelled_log()
        return exc.kind
    except SQLAlchemyError as exc:
        return interrupted(job, lease, exc)
    except Exception as exc:  # the job fails; the worker lives on
        log.exception("%s job %d failed", job.kind, job.id)
        error = error_line(exc)
        jlog.add(f"failed: {error}", logging.ERROR)
        try:
            recorded = lease.finish("failed", error=error)
        except SQLAlchemyError as db_exc:
            return interrupted(job, lease, db_exc)
        if not recorded:  # cancelled or taken over first: the job did not fail here
            why = lease.lost_to()
            jlog.add(f"the failure was not recorded: {why.reason}", logging.WARNING)
            if why.kind == "cancelled":
                lease.save_cancelled_log()
            return why.kind
        return "failed"


def hand_back(job: RetrainJob, lease: JobLease) -> str:
    """Hand the job of a stopping worker back to the queue; how that ended, said in the
    job's log (and so the worker's) only once it is known.

    "stopping": handed back, the attempt not counted. With the database away (SIGTERM
    during an outage) it cannot be: the job keeps its lease, and the next worker takes it
    over once it expires, which uses up this attempt ("interrupted", as after any database
    error). The worker exits either way, within ``HAND_BACK_BUDGET_S``.
    """
    attempt, attempts = job.attempts, job.max_attempts
    note = (
        f"handed back to the queue: another worker runs it; this attempt ({attempt} of "
        f"{attempts}) is not counted"
    )
    try:
        released = lease.hand_back(note)
    except HandBackFailed as failed:
        expires = repo.log_time(lease.expires_about)
        then = (
            f"another worker takes it over when its lease expires, at about {expires}, "
            f"as attempt {attempt + 1} of {attempts}"
            if attempt < attempts
            else f"its lease expires, at about {expires}, and the job is failed then: it "
            f"was its last attempt ({attempt} of {attempts})"
        )
        lease.log.add(f"could not hand the job back ({failed}); {then}", logging.WARNING)
        return "interrupted"
    if released:
        return "stopping"
    why = lease.lost_to()  # cancelled or taken over while it stopped: nothing to hand back
    lease.log.add(f"not handed back: {why.reason}", logging.WARNING)
    if why.kind == "cancelled":
        lease.save_cancelled_log()
    return why.kind


def interrupted(job: RetrainJob, lease: JobLease, exc: SQLAlchemyError) -> str:
    """Stop the attempt without an outcome, leaving the job to its lease (and saying so)."""
    log.warning("%s job %d: database error: %s", job.kind, job.id, error_line(exc))
    lease.log.add(
        f"stopped by a database error ({error_line(exc)}); the job's next attempt takes "
        "it over when this one's lease expires (a version saved here is finished, not "
        "trained again)",
        logging.WARNING,
    )
    lease.save_log()  # best effort: the database may be away
    return "interrupted"


def record_success(lease: JobLease, **outcome: Any) -> str:
    """Finish the job as succeeded with ``outcome``; "cancelled" if a cancel landed first
    (``outcome`` is then recorded on the cancelled job), "lost" if the lease went first."""
    if lease.finish("succeeded", **outcome):
        return "succeeded"
    if lease.record_if_cancelled(**outcome):
        return "cancelled"
    lease.log.add("lost the lease before recording the outcome", logging.WARNING)
    return "lost"


def note_saved_version(ctx: JobContext, job_id: int) -> str | None:
    """On a job the exhaustion sweep failed, name the version one of its attempts saved.

    Why: an attempt killed after saving (even promoting) its version leaves the next
    one to finish it; when that was the last attempt, the job is failed, and without
    this its row said nothing of the version it left, maybe in production. Returns
    the version, if any.
    """
    with session_scope(ctx.sessions) as session:
        row = repo.get_job(session, job_id)
    if row is None or row.status != "failed" or row.result_version is not None:
        return None
    try:  # a tune job saved under its winner's name, which its row does not hold
        models = ctx.store.list_models() if row.kind == "tune" else [row.model]
        found = next(
            (m for m in (find_job_version(ctx.store, name, job_id) for name in models) if m),
            None,
        )
        promoted = found is not None and ctx.store.alias_state(found.model) == found.version
    except (StoreError, OSError) as exc:  # a store it cannot read: the job stays as failed
        log.warning("job %d: its saved version cannot be looked up: %s", job_id, exc)
        return None
    if found is None:
        return None
    where = "production" if promoted else "not promoted"
    error = f"{row.error}; version {found.version} an attempt saved is kept ({where})"
    with session_scope(ctx.sessions) as session:
        repo.note_failed_job_version(session, job_id, found.version, promoted, error)
    return found.version


def find_job_version(store: ModelStore, model: str, job_id: int) -> Manifest | None:
    """The version an earlier attempt of ``job_id`` saved, if any.

    Versions whose manifest cannot be read are passed over (``version_listing``): one
    half-copied or hand-edited version failed every job of its model here, at the first
    step, though a job never saves such a version.
    """
    try:
        versions, _unreadable = store.version_listing(model)
    except ModelNotFound:
        return None
    return next((m for m in reversed(versions) if m.training.get("job_id") == job_id), None)


def _train_and_save(
    job: RetrainJob, lease: JobLease, ctx: JobContext
) -> tuple[Manifest, dict[str, Any]]:
    jlog = lease.log
    until = job_cutoff(ctx.settings)
    lease.report({"phase": "exporting"}, force=True)
    exported = export_interactions(job.data, job.model, ctx.store, ctx.settings, until)
    for note in exported.notes:
        jlog.add(note)
    data = exported.data
    jlog.add(
        f"data {exported.source}: {len(data):,} interactions, {data.n_users:,} users, "
        f"{data.n_items:,} items, cutoff {iso_utc(until)}"
    )
    overrides = _overrides(job, ctx.device)
    cls = model_class(job.model)
    seed = cls.Config().with_overrides(overrides).seed
    # The pipeline draws the same slice from the same seed; this copy scores production.
    split = holdout_split(data, seed=seed)
    metric = None if split is None else validation_on(cls, data, *split).metric
    lease.report({"phase": "training", "metric": metric}, force=True)
    result = train_model(job.model, data, overrides, callbacks=[epoch_progress(lease, metric)])
    lease.report({"phase": "evaluating", "metric": metric}, force=True)
    figures = gate_figures(ctx.store, job.model, data, split, result, ctx.device)
    policy = cast(PromotePolicy, job.promote)  # validated when the job was enqueued
    gate = figures.decide(policy, metric, result.higher_is_better)
    jlog.add(f"gate: {gate.reason} -> {'promote' if gate.promote else 'keep production'}")
    lease.report({"phase": "saving"}, force=True)
    if not lease.still_held():
        lease.check()
    manifest = _save(ctx.store, job, result, exported, until, gate)
    jlog.add(f"saved {job.model} version {manifest.version}")
    return manifest, gate.to_dict()


def _overrides(job: RetrainJob, device: torch.device) -> dict[str, Any]:
    """The job's params, plus the worker's device for models that train on one."""
    overrides = dict(job.params)
    fields = model_class(job.model).Config().to_dict()
    if "device" in fields and "device" not in overrides and device.type != "cpu":
        overrides["device"] = str(device)
    return overrides


def saved_progress(manifest: Manifest) -> dict[str, Any]:
    """The progress the attempt that trained ``manifest`` reported last, rebuilt from the
    training curve the version keeps (``epoch_progress``'s keys).

    Why: an attempt that finishes a version an earlier one saved trains nothing, so the
    job's progress ended as ``{"phase": "succeeded"}`` alone, and the API and dashboard
    lost the epochs and the metric the version was trained to.
    """
    training = manifest.training
    curve = training.get("curve")
    if not isinstance(curve, list) or not curve or not isinstance(curve[-1], dict):
        return {}
    last: dict[str, Any] = curve[-1]
    epochs = manifest.hyper_parameters.get("epochs")
    progress: dict[str, Any] = {
        "epoch": last.get("epoch"),
        "epochs": epochs if isinstance(epochs, int) else last.get("epoch"),
        "losses": last.get("losses", {}),
        "seconds": last.get("seconds"),
    }
    metric = training.get("selection_metric")
    if isinstance(metric, str):
        progress.update(metric=metric, value=(last.get("metrics") or {}).get(metric))
    return progress


def epoch_progress(lease: JobLease, metric: str | None, phase: str = "training") -> EpochCallback:
    """Progress sink: one log line per epoch, a (throttled) fenced write, the cancel check.

    ``metric``: the one whose ``value`` each epoch reports; None leaves the job's
    ``metric`` as reported before (a tune job's search metric, through its refit).
    """

    def on_epoch(report: EpochReport) -> None:
        losses = " ".join(f"{k}={v:.4f}" for k, v in report.losses.items())
        scores = " ".join(f"{k}={v:.4f}" for k, v in report.metrics.items())
        lease.log.add(f"epoch {report.epoch}/{report.epochs} {losses} {scores}".rstrip())
        progress: dict[str, Any] = {
            "phase": phase,
            "epoch": report.epoch,
            "epochs": report.epochs,
            "losses": report.losses,
            "seconds": round(report.seconds, 4),
        }
        if metric is not None:
            progress.update(metric=metric, value=report.metrics.get(metric))
        lease.report(progress, force=report.epoch >= report.epochs)

    return on_epoch


def _save(
    store: ModelStore,
    job: RetrainJob,
    result: TrainResult,
    exported: Exported,
    until: datetime,
    gate: GateResult,
) -> Manifest:
    """Write the version; the manifest records data (cutoff = the log read's), metrics and gate."""
    return save_trained(
        store,
        job.model,
        result,
        exported.data,
        exported.source,
        log_read_at=until,
        training={"job_id": job.id, "attempt": job.attempts, "gate": gate.to_dict()},
    )


def promote_if(
    lease: JobLease,
    store: ModelStore,
    manifest: Manifest,
    gate: dict[str, Any],
    decided: bool,
) -> tuple[bool, str | None]:
    """Move ``production`` when the gate said so and the job is still ours.

    Only from where ``gate`` found production (or to where it is already): between
    the gate and this promotion (a save, or a lease period when a later attempt
    finishes the version) an operator may have promoted or rolled back, or another
    job promoted; the gate's verdict was against a production no longer there, and
    moving the alias would undo that choice without anyone asking. The check is the
    store's, under its lock (``ModelStore.promote(only_from=...)``).

    A promotion the store cannot make (its error, or the OS's: the alias folder
    read-only, the disk full) is not the job's failure: the version is saved, and the
    job succeeds naming it, unpromoted, with why in its ``error``.
    """
    if not decided:
        return False, None
    if not lease.still_held():
        if lease.lost_to().kind == "cancelled":  # the version stays; the row names it
            lease.record_if_cancelled(result_version=manifest.version, promoted=False, gate=gate)
        lease.check()
    gated = gate.get("production_version")
    try:
        store.promote(manifest.model, manifest.version, only_from=[gated])
    except AliasChanged:
        lease.log.add(
            f"production moved since version {manifest.version} was gated (it was "
            f"{gated or 'unset'}); left where it is",
            logging.WARNING,
        )
        return False, None
    except (StoreError, OSError) as exc:  # OSError: the alias write (read-only, disk full)
        # The version is saved: failing the job here left its row without the version.
        lease.log.add(f"promotion failed: {exc}", logging.ERROR)
        return False, f"promotion failed: {exc}"
    lease.log.add(f"promoted {manifest.model} version {manifest.version} to production")
    return True, None
