"""Models: versions, aliases, metrics, training curves, tuning leaderboards; promote, rollback.

Promote and rollback call the admin API's own handlers
(``app.api.routes.admin.promote`` / ``rollback``), so the dashboard moves
aliases through the same checks (the version is verified first) and maps
failures the same way; the answer is shown on the page instead of as JSON.
A success redirects to the models page with a one-shot notice
(Post/Redirect/Get), so a reload repeats nothing; a rollback names the
version it rolls back from, and is refused (409) once production moved, so a
double click moves production once.
The "served now" panel polls this server's model holder, which picks the new
alias up within ``GENREC_RELOAD_INTERVAL_S``.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from app.api.deps import services_of
from app.api.params import StorableText
from app.api.routes import admin
from app.core.errors import ApiError, path_hider
from app.dashboard.activity import activity_table, best_per_segment
from app.dashboard.auth import CsrfDep, DashboardSession, SessionDep, redirect_with_notice
from app.dashboard.charts import curve_chart, curve_table, kept_epoch_gap
from app.dashboard.templating import render
from app.schemas_admin import ModelOut, PromoteIn, RollbackIn
from models_store import InvalidName, ModelNotFound, StoreError, VersionNotFound

router = APIRouter()


def _models(request: Request) -> tuple[list[ModelOut], dict[str, list[str]]]:
    """Every model, and per model production's version then its rollback targets."""
    services = services_of(request)
    listed = admin.list_models(services).models
    store = services.holder.store
    try:
        history = {model.name: store.alias_history(model.name) for model in listed}
    except StoreError:
        history = {}  # an unreadable alias record: the buttons fall back to no history
    return listed, history


async def _page(
    request: Request,
    session: DashboardSession,
    problem: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    history: dict[str, list[str]] = {}
    try:
        models, history = await run_in_threadpool(_models, request)
    except ApiError as exc:
        models, problem = [], exc.message
    if problem is not None:  # a store error names its file relative to the store, as the API
        problem = path_hider(services_of(request).settings.store_dir)(problem)
    return render(
        request,
        "models.html",
        session,
        status_code=status_code,
        active="Models",
        models=models,
        history=history,
        problem=problem,
    )


def _anchor(name: str) -> str:
    """The models page scrolled to ``name``'s section."""
    return f"/dashboard/models#model-{quote(name, safe='')}"


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
) -> Response:
    services = services_of(request)
    try:
        body = PromoteIn(version=version)
        moved = await run_in_threadpool(admin.promote, name, body, services)
    except ValidationError:
        return await _page(request, session, problem="Pick a version to promote.", status_code=422)
    except ApiError as exc:
        return await _page(request, session, problem=exc.message, status_code=exc.status)
    was = f"v{moved.previous}" if moved.previous is not None else "unset"
    notice = f"{name}: production now points at v{moved.version} (was {was})."
    if moved.unreadable_kept_as is not None:  # replaced: where it pointed is unknown
        notice = (
            f"{name}: production now points at v{moved.version}. Its alias file was "
            f"unreadable: replaced, with no rollback history (kept as "
            f"{moved.unreadable_kept_as})."
        )
    return redirect_with_notice(request, session, _anchor(name), notice)


@router.post("/dashboard/models/{name}/rollback", response_class=HTMLResponse)
async def rollback(
    request: Request,
    name: StorableText,
    session: CsrfDep,
    from_version: Annotated[str, Form()] = "",
) -> Response:
    """Roll production back from ``from_version``, the version the page showed: if it
    moved since (a second click, a reload, another operator), 409 and nothing moves."""
    services = services_of(request)
    if not from_version:
        problem = (
            f"{name}: this form does not say which version it rolls back from (a page "
            "from before an upgrade?); nothing was rolled back. Use the button below."
        )
        return await _page(request, session, problem=problem, status_code=409)
    try:
        body = RollbackIn(from_version=from_version)
        moved = await run_in_threadpool(admin.rollback, name, services, body)
    except ValidationError:
        problem = f"{name}: {from_version!r} is not a version; nothing was rolled back."
        return await _page(request, session, problem=problem, status_code=422)
    except ApiError as exc:
        problem = exc.message
        if exc.code == "alias_changed":
            problem = (
                f"{name}: production is no longer v{from_version} (it moved since this page "
                "was loaded: a second click, or another operator), so nothing was rolled "
                "back. Below is where it points now."
            )
        return await _page(request, session, problem=problem, status_code=exc.status)
    notice = f"{name}: production rolled back to v{moved.version} (was v{moved.previous})."
    return redirect_with_notice(request, session, _anchor(name), notice)


@router.get("/dashboard/models/{name}/versions/{version}", response_class=HTMLResponse)
async def version_page(
    request: Request, name: StorableText, version: StorableText, session: SessionDep
) -> HTMLResponse:
    """One version: metrics (overall and per user-activity segment), hyper-parameters, data,
    training curve, gate, tuning board."""
    services = services_of(request)
    store = services.holder.store
    hide = path_hider(services.settings.store_dir)
    try:
        manifest = await run_in_threadpool(store.manifest, name, version)
    except StoreError as exc:
        # A version that is not there is the link's fault (404); one that is there but
        # cannot be read is the store's (500), and says which file and why.
        missing = isinstance(exc, (ModelNotFound, VersionNotFound, InvalidName))
        return render(
            request,
            "error.html",
            session,
            status_code=404 if missing else 500,
            active="Models",
            heading="No such version" if missing else "This version cannot be read",
            message=hide(str(exc)),
            back=_anchor(name),
            back_label=f"All versions of {name}",
        )
    aliases_problem = None
    try:
        aliases = await run_in_threadpool(store.aliases, name)
    except StoreError as exc:  # the version is still worth showing; the aliases are not
        aliases, aliases_problem = {}, hide(str(exc))
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
        aliases_problem=aliases_problem,
        training=training,
        curves=curve_chart(training.get("curve")),
        curve_table=curve_table(training.get("curve")),
        kept_gap=kept_epoch_gap(training, dict(manifest.metrics)),
        activity=activity_table(training.get("by_activity")),
        gate=training.get("gate") if isinstance(training.get("gate"), dict) else None,
        tuning=tuning,
        best_per_segment=best_per_segment(tuning),
    )
