"""``GENREC_MAX_BODY_BYTES`` on every route: a 413 before a body over the limit is read.

Why a middleware: the hot POST routes read their bodies themselves and stop at the
limit (``app.api.body``), but every other route that takes a body (``PUT
/v1/items/{id}``, the admin routes, the dashboard's forms) was read whole by
FastAPI or Starlette, however large, so one request could hold any amount of the
server's memory. Here the declared ``Content-Length`` is checked before the app
runs, and a body sent without one (chunked) is counted as it streams in; past the
limit the read fails with a 413 that the app's error handlers answer like any other
(the API: ``{"error": "body_too_large", ...}``; the dashboard: its error page or
fragment); a declared one is answered by the same handler. Routes that never read their body are not
affected; a GET's empty body costs one comparison.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.app_answer import app_answer
from app.core.route_path import route_path, under

#: The stable error code of the answer (``app.core.errors`` maps a 413 to it).
BODY_TOO_LARGE = "body_too_large"


#: What sets the limit, named in the 413's message.
SETTING = "GENREC_MAX_BODY_BYTES"


def too_large_message(limit: int, what: str = SETTING) -> str:
    return f"the request body is over {limit} bytes, the limit ({what})"


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once a streamed body passes the limit; FastAPI and
    Starlette re-raise an ``HTTPException`` from a body read as it is."""

    def __init__(self, limit: int, what: str = SETTING) -> None:
        super().__init__(413, too_large_message(limit, what))


class BodyLimitMiddleware:
    """Refuses request bodies over ``limit()`` bytes (read per request: the settings'),
    and under a path prefix of ``smaller`` (prefix, bytes, what) over that many if less.

    Why smaller limits: FastAPI reads and parses a route's body (a JSON body, a form)
    before it runs the dependencies that check the caller, so a route behind a login
    parses whatever an anonymous client sends up to the limit (``app.api.admin_auth``
    checks the admin token first; a dashboard form is parsed whole before the session
    is checked).

    A prefix is matched against the path the router routes (Starlette's
    ``get_route_path``), not the scope's: under ``uvicorn --root-path /genrec`` the scope's
    path of ``/dashboard/login`` is ``/genrec/dashboard/login``, which the router strips
    back to the login form, and an anonymous form of up to the whole limit was parsed there.
    """

    def __init__(
        self,
        app: ASGIApp,
        limit: Callable[[], int],
        smaller: tuple[tuple[str, int, str], ...] = (),
    ) -> None:
        self.app = app
        self.limit = limit
        self.smaller = smaller

    def _limit(self, scope: Scope) -> tuple[int, str]:
        limit, what = self.limit(), SETTING
        path = route_path(scope)
        for prefix, bytes_, name in self.smaller:
            if bytes_ < limit and under(path, prefix):
                limit, what = bytes_, name
        return limit, what

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, what = self._limit(scope)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            # As if a body read had raised it: the same handler answers a declared and a
            # streamed body over the limit (the API's JSON, the dashboard's page).
            answer = await app_answer(scope, BodyTooLarge(limit, what), BODY_TOO_LARGE)
            await answer(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit, what)
            return message

        await self.app(scope, counted, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None
