"""The operator's dashboard at ``/dashboard``: server-rendered pages behind the admin token.

Jinja2 templates rendered by the same FastAPI app, htmx for the parts that
refresh or post without a page reload, uPlot for charts; both scripts are
vendored under ``static/vendor`` (with their licenses) and served by the
app, so the pages need no internet access. See docs/design.md "Dashboard".

``install_dashboard(app)`` adds the routes, the static files, the handlers
that turn "not logged in", "disabled" and "CSRF token missing" into pages and
the response headers of ``app.dashboard.headers`` (no framing, CSP, no-store); ``close_dashboard(app)`` stops what the pages started (lifespan).
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from app.dashboard.auth import (
    CsrfRejected,
    DashboardDisabled,
    LoginRequired,
    SessionUncheckable,
    read_session,
)
from app.dashboard.headers import DashboardHeaders
from app.dashboard.pages import catalog, experiments, explore, jobs, models, overview, session
from app.dashboard.preview import Previewer
from app.dashboard.templating import PACKAGE_DIR, render

LOGIN_PATH = "/dashboard/login"


async def _login_required(request: Request, exc: Exception) -> Response:
    if request.headers.get("HX-Request"):
        # htmx does not follow a 303 into a page swap; it does honour HX-Redirect.
        return Response(status_code=401, headers={"HX-Redirect": LOGIN_PATH})
    return RedirectResponse(LOGIN_PATH, status_code=303)


async def _disabled(request: Request, exc: Exception) -> HTMLResponse:
    return render(request, "disabled.html", None, status_code=403)


async def _session_uncheckable(request: Request, exc: Exception) -> HTMLResponse:
    return render(
        request,
        "error.html",
        None,
        status_code=503,
        message="The database is unavailable, so this session cannot be checked against "
        "logouts; retry later (the admin API does not need it).",
    )


async def _csrf_rejected(request: Request, exc: Exception) -> HTMLResponse:
    try:
        session = read_session(request)
    except SessionUncheckable:
        session = None
    return render(
        request,
        "error.html",
        session,
        status_code=403,
        message="This request did not carry the session's CSRF token; reload the page and "
        "try again.",
    )


def install_dashboard(app: FastAPI) -> None:
    app.add_exception_handler(LoginRequired, _login_required)
    app.add_exception_handler(DashboardDisabled, _disabled)
    app.add_exception_handler(CsrfRejected, _csrf_rejected)
    app.add_exception_handler(SessionUncheckable, _session_uncheckable)
    for module in (session, overview, models, jobs, experiments, explore, catalog):
        app.include_router(module.router, include_in_schema=False)
    app.mount(
        "/dashboard/static", StaticFiles(directory=PACKAGE_DIR / "static"), name="dashboard-static"
    )
    app.add_middleware(DashboardHeaders)


async def close_dashboard(app: FastAPI) -> None:
    """Drain the Explore page's batchers, if it ever ranked anything."""
    previewer: Previewer | None = getattr(app.state, "dashboard_previewer", None)
    if previewer is not None:
        await previewer.close()
