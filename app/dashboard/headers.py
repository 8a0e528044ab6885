"""Response headers of every dashboard answer: no framing, a strict CSP, no referrer to
other sites, no caching of data.

* ``X-Frame-Options: DENY`` and CSP ``frame-ancestors 'none'``: no page may
  frame the dashboard, so a click on another page (a same-site one included,
  which ``SameSite=Strict`` does not stop) cannot land on a dashboard button.
* The rest of the CSP allows what the pages use and nothing else: scripts and
  styles from this origin only (the vendored htmx and uPlot, ``dashboard.css``
  and the dashboard's own scripts; no inline script, style or ``eval``, htmx is
  told not to add its indicator ``<style>``), requests to this origin only.
  Charts' data travel as ``<script type="application/json">``, which CSP does
  not treat as script.
* ``Referrer-Policy: same-origin``: a dashboard address holds user and item ids,
  experiment names and searches (``/dashboard/explore?user=...``), which the browser
  otherwise passes on, as the origin or the whole URL, to any other site a page links
  to or loads from. Not ``no-referrer``: the dashboard reads its own ``Referer`` to send
  a form posted after the session expired back to its page (``auth.page_to_return_to``),
  and same-origin requests keep it.
* ``Cache-Control: no-store`` on pages and fragments (not on
  ``/dashboard/static``, which holds no data and stays cacheable): after
  logout, Back must not show a user's history or a model's lists from the
  browser's cache.

Pure ASGI, like ``app.core.middleware``; only paths under ``/dashboard`` are
touched, so ``/docs`` (Swagger UI's inline script) and the API are as before.
"The path" is the one the router routes (``app.core.route_path``: Starlette's own
``get_route_path``), not the scope's: under ``uvicorn --root-path /genrec`` the
scope's path of a request for ``/dashboard/login`` is ``/genrec/dashboard/login``,
which the router strips back to a dashboard page; read raw, the page went out
without these headers (frameable, no CSP, cacheable).
A server error (500) is answered outside this middleware, so its handler adds the
same headers (``add_headers``): every dashboard answer carries them.
"""

from __future__ import annotations

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.route_path import route_path, under

PREFIX = "/dashboard"
STATIC_PREFIX = "/dashboard/static/"

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

_FRAMING = [
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]
_NO_STORE = (b"cache-control", b"no-store")


def is_dashboard_path(path: str) -> bool:
    """Whether an answer at the routed ``path`` (``route_path``) is the dashboard's."""
    return under(path, PREFIX)


def headers_for(path: str) -> list[tuple[bytes, bytes]]:
    """The headers every answer at the dashboard ``path`` carries."""
    return _FRAMING + ([] if path.startswith(STATIC_PREFIX) else [_NO_STORE])


def add_headers(response: Response, path: str) -> Response:
    """``response`` with the dashboard's headers: for answers this middleware never sees.

    A 500 is written by Starlette's ``ServerErrorMiddleware``, outside every middleware
    added with ``add_middleware`` (this one included), so the server-error handler
    (``app.dashboard.install_dashboard``) sets them itself.
    """
    for name, value in headers_for(path):
        response.headers[name.decode()] = value.decode()
    return response


class DashboardHeaders:
    """Adds the headers above to every response under ``/dashboard``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = route_path(scope) if scope["type"] == "http" else ""
        if not is_dashboard_path(path):
            await self.app(scope, receive, send)
            return
        extra = headers_for(path)
        names = {name for name, _ in extra}

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                message["headers"] = kept + extra
            await send(message)

        await self.app(scope, receive, send_with_headers)
