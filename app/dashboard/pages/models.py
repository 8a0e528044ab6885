"""Models: versions, aliases, metrics, training curves, tuning leaderboards; promote, rollback.

Promote and rollback call the admin API's own handlers
(``app.api.routes.admin.promote`` / ``rollback``), so the dashboard moves
aliases through the same checks (the version is verified first) and maps
failures the same way; the answer is shown on the page instead of as JSON.
The "served now" panel polls this server's model holder, which picks the new
alias up within ``GENREC_RELOAD_INTERVAL_S``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from app.api.deps import services_of
from app.api.params import StorableText
from app.api.routes import admin
from app.core.errors import ApiError
from app.dashboard.auth import CsrfDep, DashboardSession, SessionDep
from app.dashboard.charts import curve_chart, curve_table
from app.dashboard.templating import render
from app.schemas_admin import ModelOut, PromoteIn
from models_store import StoreError

router = APIRouter()


def _models(request: Request) -> list[ModelOut]:
    listed = admin.list_models(services_of(request))
    return listed.models


async def _page(
    request: Request,
    session: DashboardSession,
    notice: str | None = None,
    problem: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    try:
        models = await run_in_threadpool(_models, request)
    except ApiError as exc:
        models, problem = [], exc.message
    return render(
        request,
        "models.html",
        session,
        status_code=status_code,
        active="Models",
        models=models,
        notice=notice,
        problem=problem,
    )


@router.get("/dashboard/models", response_class=HTMLResponse)
async def models_page(request: Request, session: SessionDep) -> HTMLResponse:
    return await _page(request, session)


@router.get("/dashboard/models/served", response_class=HTMLResponse)
def served_panel(request: Request, session: SessionDep) -> HTMLResponse:
    """What this server serves right now, per model (polled)."""
    holder = services_of(request).holder
    return render(
        request,
        "_served.html",
        session,
        served=holder.status(),
        default_model=holder.default_model,
    )


@router.post("/dashboard/models/{name}/promote", response_class=HTMLResponse)
async def promote(
    request: Request, name: StorableText, session: CsrfDep, version: Annotated[str, Form()] = ""
) -> HTMLResponse:
    services = services_of(request)
    try:
        body = PromoteIn(version=version)
        moved = await run_in_threadpool(admin.promote, name, body, services)
    except ValidationError:
        return await _page(request, session, problem="Pick a version to promote.", status_code=422)
    except ApiError as exc:
        return await _page(request, session, problem=exc.message, status_code=exc.status)
    notice = f"{name}: production now points at v{moved.version} (was v{moved.previous})."
    return await _page(request, session, notice=notice)


@router.post("/dashboard/models/{name}/rollback", response_class=HTMLResponse)
async def rollback(request: Request, name: StorableText, session: CsrfDep) -> HTMLResponse:
    services = services_of(request)
    try:
        moved = await run_in_threadpool(admin.rollback, name, services)
    except ApiError as exc:
        return await _page(request, session, problem=exc.message, status_code=exc.status)
    notice = f"{name}: production rolled back to v{moved.version} (was v{moved.previous})."
    return await _page(request, session, notice=notice)


@router.get("/dashboard/models/{name}/versions/{version}", response_class=HTMLResponse)
async def version_page(
    request: Request, name: StorableText, version: StorableText, session: SessionDep
) -> HTMLResponse:
    """One version: metrics, hyper-parameters, data, training curve, gate, tuning board."""
    store = services_of(request).holder.store
    try:
        manifest = await run_in_threadpool(store.manifest, name, version)
        aliases = await run_in_threadpool(store.aliases, name)
    except StoreError as exc:
        return render(
            request, "error.html", session, status_code=404, active="Models", message=str(exc)
        )
    training: dict[str, Any] = dict(manifest.training)
    tuning = training.get("tuning") if isinstance(training.get("tuning"), dict) else None
    return render(
        request,
        "version.html",
        session,
        active="Models",
        name=name,
        manifest=manifest,
        aliases=sorted(a for a, v in aliases.items() if v == manifest.version),
        training=training,
        curves=curve_chart(training.get("curve")),
        curve_table=curve_table(training.get("curve")),
        gate=training.get("gate") if isinstance(training.get("gate"), dict) else None,
        tuning=tuning,
    )
