"""The addresses the dashboard writes, as the browser sees them: under the root path.

Behind a reverse proxy that serves genrec under a prefix (``https://ops.example.com/genrec/``)
and strips it before passing the request on, the app is told the prefix as the ASGI
``root_path`` (``genrec serve --root-path /genrec``, uvicorn's ``--root-path``). The router
strips it again, so the dashboard's routes are the same; but every address the dashboard
hands the browser — links, form actions, htmx polls, redirects (login, return-to-page,
after an action), static assets, the cookies' ``Path`` — was ``/dashboard/...``, which
the browser sent to ``https://ops.example.com/dashboard/...``, outside the proxy's
prefix: nothing loaded, and the cookie was never sent back.

Root-relative paths, not ``request.url_for``'s absolute URLs: an absolute URL needs the
scheme and host the browser used, which behind a TLS-terminating proxy the app only
knows when it trusts the proxy's ``X-Forwarded-*`` headers; a path needs neither.
The root path is the application's (``app.core.route_path.root_path``), not a mount's.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection

from app.core.route_path import root_path

#: The dashboard's own prefix, as the router routes it.
DASHBOARD = "/dashboard"


def browser_path(request: HTTPConnection, path: str) -> str:
    """``path`` (an app path such as ``/dashboard/jobs``) as the browser must ask for it."""
    return root_path(request) + path


def cookie_path(request: HTTPConnection) -> str:
    """The ``Path`` of the dashboard's cookies: the dashboard, under the root path."""
    return browser_path(request, DASHBOARD)
