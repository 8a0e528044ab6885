"""Admin API: retrain jobs and production aliases (bearer token, see ``app/api/admin_auth``).

Handlers translate HTTP to ``app/retrain/lifecycle`` and the model store and
back; the rules live there. Promote and rollback are alias moves in the
store: every server's model holder polls the alias and swaps within
``GENREC_RELOAD_INTERVAL_S``, while requests in flight finish on the version
they started with.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Literal, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.exc import SQLAlchemyError

from app.api.admin_auth import AdminRoute, require_admin
from app.api.deps import ServicesDep
from app.api.params import JobIdPath, JobLimitQuery, JobModelQuery, ModelNamePath
from app.api.query import refuse_repeated
from app.api.responses import ADMIN, BODY, errors
from app.core.errors import ApiError, path_hider
from app.db_models import RetrainJob
from app.repository import as_utc
from app.retrain import job_cursor, lifecycle
from app.schemas_admin import (
    AliasMoved,
    JobList,
    JobOut,
    ModelList,
    ModelOut,
    PromoteIn,
    RetrainAccepted,
    RetrainIn,
    RollbackIn,
    TuneIn,
    VersionOut,
)
from app.schemas_fields import INT64_MAX, INT64_MIN
from app.serving.state import database_unavailable
from app.tune.jobs import TuneRequest, enqueue_tune
from models_store import (
    AliasChanged,
    AliasNotSet,
    InvalidName,
    ModelNotFound,
    ModelStore,
    NothingToRollBack,
    StoreError,
    VersionNotFound,
)

router = APIRouter(
    prefix="/admin",
    tags=["admin"],
    dependencies=[Depends(require_admin)],
    route_class=AdminRoute,
    responses=errors(*ADMIN),
)

T = TypeVar("T")


@contextmanager
def _api_errors() -> Iterator[None]:
    """The one mapping from job/store/database failures to API answers."""
    try:
        yield
    except lifecycle.InvalidJob as exc:
        raise ApiError(422, "invalid_request", str(exc)) from exc
    except lifecycle.JobNotFound as exc:
        raise ApiError(404, "job_not_found", str(exc)) from exc
    except lifecycle.DuplicateJob as exc:
        details = {"job_id": exc.job_id, "status": exc.status}
        raise ApiError(409, "duplicate_job", str(exc), details=details) from exc
    except lifecycle.JobConflict as exc:
        raise ApiError(409, "job_conflict", str(exc)) from exc
    except (ModelNotFound, VersionNotFound, AliasNotSet) as exc:
        raise ApiError(404, "not_found", str(exc)) from exc
    except InvalidName as exc:
        raise ApiError(422, "invalid_request", str(exc)) from exc
    except NothingToRollBack as exc:
        raise ApiError(409, "nothing_to_roll_back", str(exc)) from exc
    except AliasChanged as exc:
        raise ApiError(409, "alias_changed", str(exc)) from exc
    except StoreError as exc:  # corrupt / unknown-format version: refused, alias unchanged
        raise ApiError(409, "version_refused", str(exc)) from exc
    except SQLAlchemyError as exc:
        raise database_unavailable(exc) from exc


def _guarded(fn: Callable[[], T]) -> T:
    with _api_errors():
        return fn()


def _job_id(job_id: int) -> int:
    """An id beyond the 64-bit column names no job, like -1: a 404, never the driver's
    overflow (which read as a database outage)."""
    if not INT64_MIN <= job_id <= INT64_MAX:
        raise lifecycle.JobNotFound(job_id)
    return job_id


def job_out(row: RetrainJob, hide: Callable[[str], str]) -> JobOut:
    """The job as the API shows it; ``hide`` (``path_hider``) takes the model store's place
    on disk out of its error and log lines (a promotion that failed on an unreadable alias
    file named the file by its absolute path)."""

    def utc(value: datetime | None) -> datetime | None:
        return as_utc(value) if value is not None else None

    return JobOut(
        id=row.id,
        kind=row.kind,
        model=row.model,
        params=row.params,
        data=row.data,
        promote=row.promote,
        trigger=row.trigger,
        status=row.status,
        attempts=row.attempts,
        max_attempts=row.max_attempts,
        worker_id=row.worker_id,
        lease_expires_at=utc(row.lease_expires_at),
        progress=row.progress,
        log_tail=[hide(line) for line in row.log_tail.splitlines()] if row.log_tail else [],
        result_version=row.result_version,
        promoted=row.promoted,
        gate=row.gate,
        error=hide(row.error) if row.error is not None else None,
        search_until=utc(row.search_until),
        result=row.result,
        created_at=as_utc(row.created_at),
        started_at=utc(row.started_at),
        finished_at=utc(row.finished_at),
        updated_at=as_utc(row.updated_at),
    )


# --------------------------------------------------------------------------- jobs


@router.post(
    "/retrain", status_code=202, response_model=RetrainAccepted, responses=errors(*BODY, 409, 503)
)
def retrain(body: RetrainIn, services: ServicesDep) -> RetrainAccepted:
    """Record a retrain job (durable); a worker (`genrec worker`) runs it. While an
    identical job (same model, params, data, promote) is queued or running: 409
    `duplicate_job`, nothing recorded, its id in `details.job_id`."""
    request = lifecycle.RetrainRequest(
        model=body.model, params=dict(body.params), data=body.data, promote=body.promote
    )
    job = _guarded(lambda: lifecycle.enqueue(services.sessions, request, unless_active=True))
    return RetrainAccepted(job_id=job.id, status=job.status)


@router.post(
    "/tune", status_code=202, response_model=RetrainAccepted, responses=errors(*BODY, 409, 503)
)
def tune(body: TuneIn, services: ServicesDep) -> RetrainAccepted:
    """Record a tune job (durable): search models and settings on the interaction log,
    refit the winner, gate it, promote it if asked. Workers (`genrec worker`) run it;
    idle workers join its search. 422: what `genrec tune` refuses before reading data.
    While an identical tune job (every field the same, `models` in the same order) is
    queued or running: 409 `duplicate_job`, nothing recorded, its id in `details.job_id`."""
    request = TuneRequest(
        task=body.task,
        models=tuple(body.models) if body.models is not None else None,
        budget_minutes=body.budget_minutes,
        trials=body.trials,
        split=body.split,
        metric=body.metric,
        seed=body.seed,
        promote=body.promote,
        confirm_folds=body.confirm_folds,
    )
    job = _guarded(lambda: enqueue_tune(services.sessions, request, unless_active=True))
    return RetrainAccepted(job_id=job.id, status=job.status)


def _jobs_query_once(request: Request) -> None:
    """``list_jobs``' parameters each given once (``app.api.query.refuse_repeated``); a
    dependency, so the dashboard's direct call of ``list_jobs`` stays as it is."""
    refuse_repeated(request.query_params, ("status", "model", "kind", "limit", "cursor"))


@router.get(
    "/jobs",
    response_model=JobList,
    responses=errors(422, 503),
    dependencies=[Depends(_jobs_query_once)],
)
def list_jobs(
    services: ServicesDep,
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"] | None = None,
    model: JobModelQuery = None,
    kind: Annotated[
        Literal["retrain", "tune"] | None,
        Query(description="only retrain jobs (POST /admin/retrain) or only tune jobs"),
    ] = None,
    limit: JobLimitQuery = 50,
    cursor: Annotated[
        str | None,
        Query(
            max_length=job_cursor.MAX_CURSOR_LENGTH,
            description="the previous page's next_cursor (opaque): the page after it; "
            "leave out for the newest jobs",
        ),
    ] = None,
) -> JobList:
    """Jobs, newest first (by created_at, then id), one page at a time: pass each page's
    `next_cursor` back as `cursor` with the same filters until it is null. Jobs recorded
    meanwhile land before the first page, so no job is skipped or listed twice.
    422: a cursor this API did not hand out, a parameter given twice."""
    try:
        after = job_cursor.decode(cursor) if cursor is not None else None
    except job_cursor.InvalidCursor as exc:
        raise ApiError(422, "invalid_request", str(exc)) from exc
    rows = _guarded(
        lambda: lifecycle.list_jobs(
            services.sessions, status, model, limit + 1, kind=kind, after=after
        )
    )
    page = rows[:limit]
    last = page[-1] if len(rows) > limit else None
    hide = path_hider(services.settings.store_dir)
    return JobList(
        jobs=[job_out(r, hide) for r in page],
        next_cursor=job_cursor.encode(job_cursor.JobCursor(last.created_at, last.id))
        if last is not None
        else None,
    )


@router.get("/jobs/{job_id}", response_model=JobOut, responses=errors(404, 422, 503))
def get_job(job_id: JobIdPath, services: ServicesDep) -> JobOut:
    """Status, progress, log tail, resulting version and the gate's comparison."""
    row = _guarded(lambda: lifecycle.get_job(services.sessions, _job_id(job_id)))
    return job_out(row, path_hider(services.settings.store_dir))


@router.post("/jobs/{job_id}/cancel", response_model=JobOut, responses=errors(404, 409, 422, 503))
def cancel_job(job_id: JobIdPath, services: ServicesDep) -> JobOut:
    """Cancel a queued or running job (a running one stops at its next epoch); 409 if ended."""
    row = _guarded(lambda: lifecycle.cancel_job(services.sessions, _job_id(job_id)))
    return job_out(row, path_hider(services.settings.store_dir))


# --------------------------------------------------------------------------- models


def _model_out(store: ModelStore, name: str, hide: Callable[[str], str]) -> ModelOut:
    # An unreadable alias file is this model's problem, said in its entry: it made the whole
    # listing a 409, hiding every other model from the operator who had to repair it.
    aliases_unreadable = None
    try:
        aliases = store.aliases(name)
    except ModelNotFound:
        raise
    except StoreError as exc:
        aliases, aliases_unreadable = {}, hide(str(exc))
    readable, listed = store.version_listing(name)
    # Why each version is unreadable, with its place relative to the store (as every error).
    unreadable = {version: hide(why) for version, why in listed.items()}
    by_version: dict[str, list[str]] = {}
    for alias, version in aliases.items():
        by_version.setdefault(version, []).append(alias)
    versions = [
        VersionOut(
            version=m.version,
            created_at=m.created_at,
            aliases=sorted(by_version.get(m.version, [])),
            metrics=m.metrics,
            data=m.data.to_dict(),
            hyper_parameters=m.hyper_parameters,
            training=m.training,
            retrieval=m.retrieval,
        )
        for m in reversed(readable)
    ]
    return ModelOut(
        name=name,
        aliases=aliases,
        versions=versions,
        unreadable=unreadable,
        aliases_unreadable=aliases_unreadable,
    )


@router.get("/models", response_model=ModelList, responses=errors(404, 409))
def list_models(services: ServicesDep) -> ModelList:
    """Every stored model with its versions (newest first), aliases and metrics."""
    store = services.holder.store
    hide = path_hider(services.settings.store_dir)
    return _guarded(
        lambda: ModelList(models=[_model_out(store, n, hide) for n in store.list_models()])
    )


@router.post("/models/{name}/promote", response_model=AliasMoved, responses=errors(*BODY, 404, 409))
def promote(name: ModelNamePath, body: PromoteIn, services: ServicesDep) -> AliasMoved:
    """Point ``production`` at a version (verified first); servers swap without restart.

    As ``genrec models promote`` (the store's one path for an operator's promotion): an
    alias file that does not parse is replaced, with no rollback history, and its bytes
    kept beside it (``unreadable_kept_as``). One that cannot be read at all (a folder in
    its place, no permission) is a 409 saying what to do."""
    store = services.holder.store
    hide = path_hider(services.settings.store_dir)

    def move() -> AliasMoved:
        moved = store.promote_by_operator(name, str(body.version))
        return AliasMoved(
            model=name,
            alias="production",
            version=moved.manifest.version,
            previous=moved.previous,
            unreadable_kept_as=None if moved.kept_as is None else hide(moved.kept_as),
        )

    return _guarded(move)


@router.post(
    "/models/{name}/rollback", response_model=AliasMoved, responses=errors(*BODY, 404, 409)
)
def rollback(
    name: ModelNamePath, services: ServicesDep, body: RollbackIn | None = None
) -> AliasMoved:
    """Move ``production`` back to the version it pointed at before. With
    ``{"from_version": V}``, only while production still points at V (else 409
    ``alias_changed``, nothing moved), so a rollback sent twice moves it once."""
    store = services.holder.store
    expected = None if body is None or body.from_version is None else str(body.from_version)

    def move() -> AliasMoved:
        previous = store.alias_state(name)
        version = store.rollback(name, expected=expected)
        if expected is not None:
            previous = expected  # checked under the store's lock: what it moved from
        return AliasMoved(model=name, alias="production", version=version, previous=previous)

    return _guarded(move)
