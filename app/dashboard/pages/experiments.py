"""Experiments: every experiment, one experiment's results (table, charts over time, SRM),
a form to create one and a button to stop it.

Listing, results, create and stop call the experiments admin API's own handlers
(``app.api.routes.experiments``), so the page counts, validates and refuses
exactly as the API does, and its 4xx message is what the page shows. The charts
come from ``app.experiments.series`` (the same counted lists, bucketed over
time). While an experiment runs its results panel polls every
``POLL_S`` seconds; each read is proportional to the experiment's size, as an
API read is. Create and stop redirect to the experiment's page with a one-shot
notice (Post/Redirect/Get), so a reload repeats neither.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import AfterValidator, ValidationError
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from app.api.deps import Services, services_of
from app.api.params import StorableText
from app.api.routes import experiments as api
from app.core.db import session_scope
from app.core.errors import ApiError
from app.dashboard.auth import CsrfDep, DashboardSession, SessionDep, redirect_with_notice
from app.dashboard.charts import experiment_charts
from app.dashboard.forms import validation_problem
from app.dashboard.templating import render
from app.experiments import definitions, series
from app.schemas_experiments import ExperimentIn, ExperimentOut, ExperimentSummary
from app.schemas_fields import storable
from app.serving.state import database_unavailable
from training.models import REGISTRY

router = APIRouter()

POLL_S = 3
#: Variant rows of the create form (blank rows are left out).
FORM_ROWS = 3


def _listed(services: Services) -> list[ExperimentSummary]:
    return api.list_experiments(services).experiments


def _results(services: Services, name: str) -> tuple[ExperimentOut, list[dict[str, Any]]]:
    """The API's results document and the charts over time of one experiment."""
    out = api.get_experiment(services, name)  # flushes this replica's queued impressions
    settings = services.settings
    try:
        exp = definitions.get(services.sessions, name)
        with session_scope(services.sessions) as session:
            over_time = series.load_series(
                session,
                exp,
                settings.experiment_click_types,
                settings.experiment_conversion_types,
                now=datetime.now(UTC),
            )
    except definitions.ExperimentNotFound as exc:  # deleted between the two reads
        raise ApiError(404, "experiment_not_found", str(exc)) from exc
    except SQLAlchemyError as exc:
        raise database_unavailable(exc) from exc
    return out, experiment_charts(over_time, exp.control)


async def _results_context(request: Request, name: str) -> dict[str, Any]:
    try:
        out, charts = await run_in_threadpool(_results, services_of(request), name)
    except ApiError as exc:
        return {"result": None, "charts": [], "results_problem": exc.message, "shown": name}
    return {"result": out, "charts": charts, "results_problem": None, "shown": name}


def _blank_form(default_model: str) -> dict[str, Any]:
    rows = [
        {"name": "control", "model": default_model, "version": "", "weight": "1"},
        {"name": "treatment", "model": "", "version": "", "weight": "1"},
    ]
    rows += [{"name": "", "model": "", "version": "", "weight": ""}] * (FORM_ROWS - len(rows))
    return {"name": "", "window": "", "rows": rows}


async def _page(
    request: Request,
    session: DashboardSession,
    shown: str | None = None,
    problem: str | None = None,
    form: dict[str, Any] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    services = services_of(request)
    try:
        listed = await run_in_threadpool(_listed, services)
        list_problem = None
    except ApiError as exc:
        listed, list_problem = [], exc.message
    if shown is None and listed:  # the running one, else the newest
        shown = next((e.name for e in listed if e.status == "running"), listed[0].name)
    context = (
        await _results_context(request, shown)
        if shown
        else {"result": None, "charts": [], "shown": None}
    )
    return render(
        request,
        "experiments.html",
        session,
        status_code=status_code,
        active="Experiments",
        experiments=listed,
        list_problem=list_problem,
        models=sorted(REGISTRY),
        problem=problem,
        form=form or _blank_form(services.holder.default_model),
        poll_s=POLL_S,
        **context,
    )


@router.get("/dashboard/experiments", response_class=HTMLResponse)
async def experiments_page(
    request: Request,
    session: SessionDep,
    name: Annotated[str | None, AfterValidator(storable)] = None,
) -> HTMLResponse:
    return await _page(request, session, shown=name or None)


@router.get("/dashboard/experiments/{name}/results", response_class=HTMLResponse)
async def results_panel(request: Request, name: StorableText, session: SessionDep) -> HTMLResponse:
    """One experiment's table, SRM and charts (polled while it runs)."""
    context = await _results_context(request, name)
    return render(request, "_experiment_results.html", session, poll_s=POLL_S, **context)


def _number(text: str) -> float | str:
    """A form field as a number when it is one; else the text, for the API's validation to name."""
    try:
        return float(text)
    except ValueError:
        return text.strip()


def _variants(
    names: list[str], models: list[str], versions: list[str], weights: list[str]
) -> list[dict[str, Any]]:
    """The filled rows of the form as ``VariantIn`` dicts (numbers parsed where they parse:
    what does not is passed on as text, and the API's validation names it)."""
    variants = []
    for n in range(max(len(names), len(models), len(versions), len(weights))):
        row = [
            (column[n] if n < len(column) else "").strip()
            for column in (names, models, versions, weights)
        ]
        name, model, version, weight = row
        if not any(row):
            continue
        variants.append(
            {"name": name, "model": model, "version": version or None, "weight": _number(weight)}
        )
    return variants


@router.post("/dashboard/experiments", response_class=HTMLResponse)
async def create(
    request: Request,
    session: CsrfDep,
    name: Annotated[str, Form()] = "",
    window_minutes: Annotated[str, Form()] = "",
    variant_name: Annotated[list[str] | None, Form()] = None,
    variant_model: Annotated[list[str] | None, Form()] = None,
    variant_version: Annotated[list[str] | None, Form()] = None,
    variant_weight: Annotated[list[str] | None, Form()] = None,
) -> Response:
    names, models = variant_name or [], variant_model or []
    versions, weights = variant_version or [], variant_weight or []
    rows = [
        {"name": a, "model": b, "version": c, "weight": d}
        for a, b, c, d in zip(names, models, versions, weights, strict=False)
    ]
    rows += [{"name": "", "model": "", "version": "", "weight": ""}] * (FORM_ROWS - len(rows))
    form = {"name": name, "window": window_minutes, "rows": rows}
    window = _number(window_minutes) if window_minutes.strip() else None
    try:
        body = ExperimentIn.model_validate(
            {
                "name": name.strip(),
                "variants": _variants(names, models, versions, weights),
                "window_minutes": window,
            }
        )
        created = await run_in_threadpool(api.create_experiment, body, services_of(request))
    except ValidationError as exc:
        problem = validation_problem(exc)
        return await _page(request, session, problem=problem, form=form, status_code=422)
    except ApiError as exc:
        return await _page(request, session, problem=exc.message, form=form, status_code=exc.status)
    notice = (
        f"Experiment {created.name} started: "
        + ", ".join(f"{v.name} ({v.model}, weight {v.weight:g})" for v in created.variants)
        + f"; control is {created.control}."
    )
    return redirect_with_notice(request, session, _shown_url(created.name), notice)


def _shown_url(name: str) -> str:
    return f"/dashboard/experiments?name={quote(name, safe='')}"


@router.post("/dashboard/experiments/{name}/stop", response_class=HTMLResponse)
async def stop(request: Request, name: StorableText, session: CsrfDep) -> Response:
    try:
        stopped = await run_in_threadpool(api.stop_experiment, services_of(request), name)
    except ApiError as exc:
        return await _page(
            request, session, shown=name, problem=exc.message, status_code=exc.status
        )
    notice = f"Experiment {stopped.name} stopped: requests go back to the default model."
    return redirect_with_notice(request, session, _shown_url(stopped.name), notice)
