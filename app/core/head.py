"""``HEAD`` answered on every ``GET`` resource: GET's status and headers, no body.

Why: uptime monitors and load balancers probe with HEAD, and RFC 9110 (9.3.2) asks a
server to answer HEAD as it would GET, without the content. Starlette's ``Route`` adds
HEAD to a GET route, FastAPI's ``APIRoute`` does not, so every API route and dashboard
page but the two health checks (which had HEAD routes of their own) answered 405.

Why one middleware rather than a HEAD method on each route: a route with both methods
documents two operations under one operationId (an invalid schema; why the health
checks needed routes of their own), FastAPI 0.165 matches an included router's
routes through private copies of their methods (adding HEAD afterwards means editing
its internals), and per route, one added later would be forgotten. Here the request goes on as a GET, so it meets exactly what a GET meets —
the API-key check, the admin token and its lockout, the dashboard's session — and its
answer has GET's status and headers, ``Content-Length`` included; only the body bytes
are dropped. ``/openapi.json`` lists GET operations only; the API's description says
that each also answers HEAD.

Installed innermost (just outside the router), so the middlewares around it — the
access log, latency metrics, the API-key check — see the request as the HEAD it is.
The router works on a copy of the scope (the server reads ``scope["method"]`` while it
sends the answer: told GET, it would wait for the body its ``Content-Length``
announces); what routing added to the copy (route, endpoint, path parameters) is copied
back, so the latency metric is labelled by the route as for any request.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: What ``/openapi.json`` says about HEAD, once for all operations.
HEAD_NOTE = (
    "Every GET operation also answers HEAD, with the status and headers a GET would get "
    "(Content-Length included) and no body; HEAD is not listed per operation."
)
_EMPTY_END = {"type": "http.response.body", "body": b"", "more_body": False}


class HeadAsGet:
    """Routes a HEAD request as a GET and sends its answer without the body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        as_get = {**scope, "method": "GET"}

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return  # a chunk of the body: dropped
                message = dict(_EMPTY_END)
            await send(message)

        try:
            await self.app(as_get, receive, headers_only)
        finally:
            scope.update({key: value for key, value in as_get.items() if key != "method"})
