"""Overview: request rates, latency and errors per endpoint, cache, batches, health.

The page polls ``/dashboard/overview/panel`` (htmx, every 2 s); each poll
reads the registry once (``app.dashboard.metrics_view``).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from app.api.deps import services_of
from app.core.db import ping
from app.dashboard.auth import SessionDep
from app.dashboard.metrics_view import Sampler, overview, rate_chart
from app.dashboard.templating import render

router = APIRouter()


def _sampler(request: Request) -> Sampler:
    sampler: Sampler | None = getattr(request.app.state, "dashboard_sampler", None)
    if sampler is None:
        sampler = Sampler(services_of(request).metrics.registry)
        request.app.state.dashboard_sampler = sampler
    return sampler


@router.get("/dashboard/overview", response_class=HTMLResponse)
def overview_page(request: Request, session: SessionDep) -> HTMLResponse:
    return render(request, "overview.html", session, active="Overview")


def _database_health(request: Request) -> tuple[bool, str]:
    try:
        ping(services_of(request).engine)
        return True, "reachable"
    except SQLAlchemyError as exc:
        return False, f"{type(exc).__name__}: {str(exc).splitlines()[0]}"


@router.get("/dashboard/overview/panel", response_class=HTMLResponse)
async def overview_panel(request: Request, session: SessionDep) -> HTMLResponse:
    services = services_of(request)
    now, oldest, window = _sampler(request).sample()
    database_ok, database_detail = await run_in_threadpool(_database_health, request)
    cache_ok = await run_in_threadpool(services.cache.ping)
    return render(
        request,
        "_overview_panel.html",
        session,
        view=overview(now, oldest),
        rate=rate_chart(window),
        database_ok=database_ok,
        database_detail=database_detail,
        cache_ok=cache_ok,
        cache_backend=services.cache.kind,
        served=services.holder.status(),
        default_model=services.holder.default_model,
        inf=float("inf"),
    )
