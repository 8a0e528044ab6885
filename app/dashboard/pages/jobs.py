"""Jobs: the job table with live progress, log tail and gate outcome; a form to start a retrain.

The list polls ``/dashboard/jobs/list`` (htmx, every 2 s). A poll carries a job's
log tail (up to 80 lines) only for the jobs whose "Log and fields" are open in the
page (``open=3,7``, added by ``static/job_logs.js``; opening one polls at once):
sending every listed job's tail made each poll about 30 times larger than the table
it refreshes (``benchmarks/dashboard_jobs_poll.py``). Rows are shown
through the admin API's ``job_out`` and rendered generically: the columns
every job has first, then whatever else a row holds (progress, gate and any
field another job kind adds) as key/value lists, so a new job kind shows up
without a template change. Starting a job calls the admin API's ``retrain``
handler with the same ``RetrainIn`` validation, then redirects to the list
(Post/Redirect/Get: a reload does not queue it again); while an identical job is
queued or running it queues nothing and the list says which job that is, once.
Each queued or running job has a Cancel button (the admin API's cancel handler).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from app import repository as repo
from app.api.deps import services_of
from app.api.routes import admin
from app.core.db import session_scope
from app.core.errors import ApiError
from app.dashboard.auth import CsrfDep, DashboardSession, SessionDep, redirect_with_notice
from app.dashboard.forms import validation_problem
from app.dashboard.templating import render
from app.schemas_admin import JobOut, RetrainIn
from training.data.strict_json import DuplicateKey, loads
from training.models import REGISTRY

router = APIRouter()

LIST_LIMIT = 30
#: Shown as columns; every other field of a job is listed under "details".
COLUMNS = ("id", "model", "status", "trigger", "attempts", "result_version", "promoted")
#: Shown in their own places (progress bar, gate box, log, error line, times).
PLACED = (*COLUMNS, "progress", "gate", "log_tail", "error", "params", "kind", "stalled")
#: The jobs whose details (and log) are open in the page, as the poll names them.
OpenLogs = Annotated[
    str,
    Query(
        alias="open",
        max_length=2_000,
        pattern=r"^\d{1,18}(,\d{1,18})*$",
        description="ids of the jobs whose log to send, comma-separated",
    ),
]


def _jobs(request: Request) -> list[dict[str, Any]]:
    services = services_of(request)
    listed = admin.list_jobs(services, status=None, model=None, limit=LIST_LIMIT)
    with session_scope(services.sessions) as session:  # leases run on the database's clock
        now = repo.database_time(session)
    return [{**job.model_dump(mode="json"), "stalled": _stalled(job, now)} for job in listed.jobs]


def _stalled(job: JobOut, now: datetime) -> str | None:
    """Why a job that says "running" is not: its worker stopped renewing the lease (killed,
    out of memory, cut off). Without this the row read "running" with live-looking
    progress until another worker took it over, or forever with no worker up. ``now`` is
    the database's clock, the one leases are written and taken over by."""
    if job.status != "running" or job.lease_expires_at is None or job.lease_expires_at > now:
        return None
    if job.attempts >= job.max_attempts:
        return "its worker stopped on the last attempt: a worker fails it at its next look"
    return "its worker stopped (lease expired): the next free worker takes it over"


async def _list_context(
    request: Request, open_logs: frozenset[int] = frozenset()
) -> dict[str, Any]:
    """The list's rows; ``open_logs``: the jobs whose log tail goes with them (the others'
    is left out: the details are closed, and the poll repeats every 2 s)."""
    try:
        jobs = await run_in_threadpool(_jobs, request)
        problem = None
    except ApiError as exc:
        jobs, problem = [], exc.message
    return {
        "jobs": jobs,
        "list_problem": problem,
        "columns": COLUMNS,
        "placed": PLACED,
        "open_logs": open_logs,
    }


async def _page(
    request: Request,
    session: DashboardSession,
    problem: str | None = None,
    form: dict[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    return render(
        request,
        "jobs.html",
        session,
        status_code=status_code,
        active="Jobs",
        models=sorted(REGISTRY),
        problem=problem,
        form=form or {"model": services_of(request).holder.default_model, "params": "{}"},
        **await _list_context(request),
    )


@router.get("/dashboard/jobs", response_class=HTMLResponse)
async def jobs_page(request: Request, session: SessionDep) -> HTMLResponse:
    return await _page(request, session)


@router.get("/dashboard/jobs/list", response_class=HTMLResponse)
async def jobs_list(request: Request, session: SessionDep, opened: OpenLogs = "") -> HTMLResponse:
    """The polled table; the log tails only of the jobs ``open`` names."""
    open_logs = frozenset(int(job_id) for job_id in opened.split(",") if job_id)
    context = await _list_context(request, open_logs)
    return render(request, "_jobs_list.html", session, **context)


@router.post("/dashboard/jobs/{job_id}/cancel", response_class=HTMLResponse)
async def cancel_job(request: Request, job_id: int, session: CsrfDep) -> Response:
    """Cancel a queued or running job through the admin API's handler (its rules and
    messages); back to the list with what happened (a job that ended meanwhile: said so).

    Why here: the page's own notice for a duplicate request says to cancel the job
    first, and the page had no way to.
    """
    try:
        row = await run_in_threadpool(admin.cancel_job, job_id, services_of(request))
    except ApiError as exc:
        return await _page(request, session, problem=exc.message, status_code=exc.status)
    notice = f"Job {row.id} ({row.model}) cancelled."
    return redirect_with_notice(request, session, "/dashboard/jobs", notice)


@router.post("/dashboard/jobs", response_class=HTMLResponse)
async def start_retrain(
    request: Request,
    session: CsrfDep,
    model: Annotated[str, Form()] = "",
    data: Annotated[str, Form()] = "log+base",
    promote: Annotated[str, Form()] = "auto",
    params: Annotated[str, Form()] = "{}",
) -> Response:
    """Queue a retrain; on success a 303 back to the list (Post/Redirect/Get), on a
    refusal the form again with the problem and what was typed."""
    form = {"model": model, "data": data, "promote": promote, "params": params}
    try:
        overrides = loads(params or "{}")  # a key twice: refused, as by the API
    except DuplicateKey as exc:
        problem = f"params: key {exc.key!r} appears more than once; give each key once"
        return await _page(request, session, problem=problem, form=form, status_code=422)
    except json.JSONDecodeError as exc:
        problem = f"params: not JSON ({exc.msg} at character {exc.pos})"
        return await _page(request, session, problem=problem, form=form, status_code=422)
    except (ValueError, RecursionError):  # an integer of > 4,300 digits; nested too deep
        problem = "params: not readable as JSON (a number too long or nesting too deep)"
        return await _page(request, session, problem=problem, form=form, status_code=422)
    try:
        body = RetrainIn.model_validate(
            {"model": model, "params": overrides, "data": data, "promote": promote}
        )
        accepted = await run_in_threadpool(admin.retrain, body, services_of(request))
    except ValidationError as exc:
        return await _page(
            request, session, problem=validation_problem(exc), form=form, status_code=422
        )
    except ApiError as exc:
        if exc.code == "duplicate_job":  # a second click, another tab or operator: nothing new
            twin, status = exc.details["job_id"], exc.details["status"]
            notice = (
                f"Not queued: job {twin} is already {status} with the same settings ({model}, "
                "same params, data and promote); follow it below, or cancel it to start "
                "another."
            )
            return redirect_with_notice(request, session, "/dashboard/jobs", notice)
        return await _page(request, session, problem=exc.message, form=form, status_code=exc.status)
    notice = f"Job {accepted.job_id} queued ({model}); a worker (genrec worker) runs it."
    return redirect_with_notice(request, session, "/dashboard/jobs", notice)
