"""Jinja2 templates of the dashboard and the one helper that renders a page.

Every page gets the navigation bar and its session's CSRF token (``base.html``
puts it in a meta tag and in htmx's ``hx-headers``, and forms carry it as a
hidden field). Jinja2 autoescapes HTML, so ids, titles and log lines typed by
anyone are shown as text; ``app.dashboard.formatting``'s filters print values
(``show``), moments (``utc``) and URL parts (``urlpart``, ``item_href``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from app.core.route_path import root_path
from app.dashboard.auth import (
    CSRF_FIELD,
    CSRF_HEADER,
    FLASH_COOKIE,
    DashboardSession,
    take_notice,
)
from app.dashboard.formatting import item_href, show, urlpart, utc
from app.dashboard.urls import cookie_path

PACKAGE_DIR = Path(__file__).parent
templates = Jinja2Templates(directory=PACKAGE_DIR / "templates")
# How values, times and URL parts are printed (app.dashboard.formatting).
templates.env.filters.update(show=show, utc=utc, urlpart=urlpart, item_href=item_href)

#: (label, path) of the navigation bar, in order.
NAV = [
    ("Overview", "/dashboard/overview"),
    ("Models", "/dashboard/models"),
    ("Jobs", "/dashboard/jobs"),
    ("Experiments", "/dashboard/experiments"),
    ("Explore", "/dashboard/explore"),
    ("Catalog", "/dashboard/catalog"),
]


def render(
    request: Request,
    template: str,
    session: DashboardSession | None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """``template`` with the navigation, the CSRF token and ``context``.

    A whole page (not a ``_fragment.html``) also shows, once, the notice an action
    left before redirecting here (``auth.redirect_with_notice``)."""
    flashed = FLASH_COOKIE in request.cookies and not template.startswith("_")
    if flashed and session is not None and context.get("notice") is None:
        context["notice"] = take_notice(request, session)
    response = templates.TemplateResponse(
        request,
        template,
        {
            "nav": NAV,
            # Before every address a template writes (app.dashboard.urls): "/genrec" under
            # ``--root-path /genrec``, "" otherwise.
            "root": root_path(request),
            "session": session,
            "csrf_token": session.csrf_token if session is not None else "",
            "csrf_field": CSRF_FIELD,
            "csrf_header": CSRF_HEADER,
            **context,
        },
        status_code=status_code,
    )
    if flashed:
        response.delete_cookie(FLASH_COOKIE, path=cookie_path(request))
    return response
