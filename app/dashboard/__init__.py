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

import inspect
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.core.errors import REQUEST_ID_HEADER, allowed_methods, request_id_of, validation_body
from app.core.route_path import route_path
from app.dashboard.auth import (
    CsrfRejected,
    DashboardDisabled,
    DashboardSession,
    LoginRequired,
    SessionUncheckable,
    login_url,
    page_to_return_to,
    read_session,
)
from app.dashboard.forms import MAX_FORM_BYTES
from app.dashboard.headers import (
    STATIC_PREFIX,
    DashboardHeaders,
    add_headers,
    is_dashboard_path,
)
from app.dashboard.pages import catalog, experiments, explore, jobs, models, overview, session
from app.dashboard.preview import Previewer
from app.dashboard.templating import PACKAGE_DIR, render

ExceptionHandler = Callable[[Request, Exception], Response | Awaitable[Response]]

__all__ = ["MAX_FORM_BYTES", "PREFIX", "close_dashboard", "install_dashboard"]

#: The path prefix ``MAX_FORM_BYTES`` applies under.
PREFIX = "/dashboard"


async def _login_required(request: Request, exc: Exception) -> Response:
    """To the login form, which comes back to this page (``next``) after logging in."""
    target = login_url(request, page_to_return_to(request))
    if request.headers.get("HX-Request"):
        # htmx does not follow a 303 into a page swap; it does honour HX-Redirect.
        return Response(status_code=401, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


async def _disabled(request: Request, exc: Exception) -> HTMLResponse:
    return render(request, "disabled.html", None, status_code=403)


#: Set on the fragment a polled panel gets while the database is down (``dashboard.js``
#: swaps it in, although it is a 503, and says since when).
OUTAGE_HEADER = "X-Dashboard-Outage"


async def _session_uncheckable(request: Request, exc: Exception) -> HTMLResponse:
    """The database is down, so no session can be checked against logouts: nothing is
    shown that needs a session (a revoked one must not see data meanwhile).

    A polled panel gets a fragment that says so (for the overview's: the Database
    card, "down"), marked for the page's script to swap in; a page, a 503 page."""
    if request.headers.get("HX-Request"):
        answer = render(
            request,
            "_database_unavailable.html",
            None,
            status_code=503,
            overview=route_path(request.scope) == "/dashboard/overview/panel",
        )
        answer.headers[OUTAGE_HEADER] = "database"
        return answer
    return render(
        request,
        "error.html",
        None,
        status_code=503,
        heading="Database unavailable",
        message="The database is unavailable, so this session cannot be checked against "
        "logouts and no page is shown; reload when it is back (the admin API does not "
        "need it).",
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


def _session_if_any(request: Request) -> DashboardSession | None:
    """The session for an error page's navigation, or None (no cookie, database down, off)."""
    try:
        return read_session(request)
    except (SessionUncheckable, DashboardDisabled):
        return None


#: Headings of the error page per status (others: "Problem").
_HEADINGS = {
    400: "Bad request",
    404: "Not found",
    405: "Not a page",
    408: "Too slow",
    413: "Too large",
    415: "Not readable",
    422: "Invalid address",
    500: "Server error",
}


def _error_page(request: Request, status_code: int, message: str) -> HTMLResponse:
    if request.headers.get("HX-Request"):
        return render(request, "_problem.html", None, status_code=status_code, message=message)
    return render(
        request,
        "error.html",
        _session_if_any(request),
        status_code=status_code,
        heading=_HEADINGS.get(status_code),
        message=message,
        back="/dashboard/overview",
        back_label="Go to the overview",
    )


async def _delegate(handler: ExceptionHandler, request: Request, exc: Exception) -> Response:
    answer = handler(request, exc)
    return await answer if inspect.isawaitable(answer) else answer


def _error_pages_for_dashboard_paths(app: FastAPI) -> None:
    """404, 405, 408, 413 and 415 (``app.core.body_timeout``, ``body_limit`` and
    ``body_encoding`` answer through this handler) and 422 under ``/dashboard`` (not its static files) as dashboard pages with
    the same status, instead of the API's JSON; elsewhere the API's handlers answer."""
    api_http = app.exception_handlers.get(StarletteHTTPException, http_exception_handler)
    api_invalid = app.exception_handlers.get(
        RequestValidationError, request_validation_exception_handler
    )

    def ours(request: Request) -> bool:
        path = route_path(request.scope)
        return is_dashboard_path(path) and not path.startswith(STATIC_PREFIX)

    async def http_error(request: Request, exc: Exception) -> Response:
        if not ours(request) or not isinstance(exc, StarletteHTTPException):
            return await _delegate(api_http, request, exc)
        path = route_path(request.scope)
        if exc.status_code == 404:
            message = f"There is no dashboard page at {path}."
        elif exc.status_code == 405:
            allowed = allowed_methods(request)
            message = (
                f"{path} only takes a form's submission ({', '.join(allowed)}); it is not a "
                "page to open. Go back to the page and use its button."
            )
        else:
            message = str(exc.detail)
        answer = _error_page(request, exc.status_code, message)
        answer.headers.update(exc.headers or {})  # a 408's Connection: close
        if exc.status_code == 405:
            answer.headers["Allow"] = ", ".join(allowed_methods(request))
        return answer

    async def invalid(request: Request, exc: Exception) -> Response:
        if not ours(request) or not isinstance(exc, RequestValidationError):
            return await _delegate(api_invalid, request, exc)
        message = validation_body(exc.errors())["message"]
        return _error_page(request, 422, f"This address is not valid: {message}")

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid)


def _server_errors_with_dashboard_headers(app: FastAPI) -> None:
    """A 500 under ``/dashboard`` carries the dashboard's headers (no framing, CSP,
    no-store), which ``DashboardHeaders`` cannot add: Starlette answers it from its
    outermost middleware. The API's handler logs it and writes the answer; a page or a
    polled panel then gets the dashboard's error page or fragment with the request id
    instead of the API's JSON (the JSON, headers added, if even that page fails)."""
    api_unexpected = app.exception_handlers.get(Exception)

    async def server_error(request: Request, exc: Exception) -> Response:
        if api_unexpected is None:
            raise exc
        answer = await _delegate(api_unexpected, request, exc)
        path = route_path(request.scope)
        if not is_dashboard_path(path):
            return answer
        if not path.startswith(STATIC_PREFIX):
            message = (
                "Something went wrong on the server; it is in the server log as request "
                f"{request_id_of(request)}. Reload to try again."
            )
            try:
                page = _error_page(request, 500, message)
            except Exception:  # the page itself failed: the JSON answer, still with headers
                pass
            else:
                page.headers[REQUEST_ID_HEADER] = request_id_of(request)
                answer = page
        return add_headers(answer, path)

    app.add_exception_handler(Exception, server_error)


def install_dashboard(app: FastAPI) -> None:
    _error_pages_for_dashboard_paths(app)
    _server_errors_with_dashboard_headers(app)
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
