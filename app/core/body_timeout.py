"""``GENREC_BODY_TIMEOUT_S``: a request body that stops arriving is a 408, and the
connection is closed.

Why in the server: uvicorn has no body-read timeout. A client that declared a body
(``Content-Length: 1000``, or chunked) and then sent nothing more held its connection,
and the request's place in the app, for as long as it kept the socket open: a route
reading the body waited on ``receive`` forever. A proxy's timeout (nginx's
``client_body_timeout``) bounds that only where there is a proxy; this bounds it
everywhere, the same way: the time allowed between two successive reads of the body,
not for the whole body, so a large body on a slow link is read as long as it keeps
coming.

How: ``receive`` is wrapped. Only a wait for more of the body is timed (the app's own
pauses between reads are not the client's), and only until the body is complete: after
that, ``receive`` is the server's again (it then waits for the client to leave, which is
no body read). On expiry the read raises ``BodyTimeout``, an ``HTTPException`` that the
app's error handlers answer like any other (the API: ``{"error": "body_timeout", ...}``;
the dashboard: its error page or fragment), with ``Connection: close``: the body was
read only in part, so the connection cannot carry another request. A route that never
reads its body is not affected, and a GET's ``receive`` is left untouched.
"""

from __future__ import annotations

import asyncio

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.media_types import BODYLESS_METHODS
from app.core.metrics import Metrics

#: The stable error code of the answer (``app.core.errors`` maps a 408 to it).
BODY_TIMEOUT = "body_timeout"
#: What sets the timeout, named in the 408's message.
SETTING = "GENREC_BODY_TIMEOUT_S"


class BodyTimeout(HTTPException):
    """Raised from ``receive`` once no more of the body came for the timeout; FastAPI and
    Starlette re-raise an ``HTTPException`` from a body read as it is."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__(
            408,
            f"the request body stopped arriving: nothing more of it came for {timeout_s:g} s "
            f"({SETTING}); the connection is closed",
            headers={"Connection": "close"},
        )


class BodyTimeoutMiddleware:
    """Times each wait for more of a request body; ``timeout_s`` 0 turns it off."""

    def __init__(self, app: ASGIApp, timeout_s: float, metrics: Metrics) -> None:
        self.app = app
        self.timeout_s = timeout_s
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in BODYLESS_METHODS or not self.timeout_s:
            await self.app(scope, receive, send)
            return
        await self.app(scope, _TimedBody(receive, self.timeout_s, self.metrics), send)


class _TimedBody:
    """One request's ``receive``, each wait for more of its body timed.

    Why a timer handle rather than ``asyncio.timeout``: a POST's body is most often
    there at the first read, so the timer is set and cancelled at once on every such
    request, and ``asyncio.timeout`` (a context object, its own rescheduling) added about
    1.6 times what a bare ``call_later`` adds to that (``benchmarks/body_edge.py``,
    docs/performance.md). The cancellation is then this class's to undo (``uncancel``),
    as ``asyncio.timeout`` would.
    """

    __slots__ = ("_complete", "_expired", "_metrics", "_receive", "_task", "_timeout_s")

    def __init__(self, receive: Receive, timeout_s: float, metrics: Metrics) -> None:
        self._receive = receive
        self._timeout_s = timeout_s
        self._metrics = metrics
        self._complete = False
        self._expired = False
        self._task: asyncio.Task[object] | None = None

    async def __call__(self) -> Message:
        if self._complete:
            return await self._receive()
        self._task = asyncio.current_task()
        timer = asyncio.get_running_loop().call_later(self._timeout_s, self._expire)
        try:
            message = await self._receive()
        except asyncio.CancelledError:
            # Ours only if our timer fired and nobody else cancelled the task as well
            # (a server shutting down): theirs goes on as a cancellation.
            if self._expired and self._task is not None and self._task.uncancel() == 0:
                self._metrics.body_timeouts.inc()
                raise BodyTimeout(self._timeout_s) from None
            raise
        finally:
            timer.cancel()
        self._complete = message["type"] != "http.request" or not message.get("more_body")
        return message

    def _expire(self) -> None:
        self._expired = True
        if self._task is not None:
            self._task.cancel()
