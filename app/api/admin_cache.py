"""``Cache-Control: no-store`` on every answer under ``/admin``, errors included.

Admin answers hold operator data (jobs and their logs, models, experiments) behind the
admin token. Shared caches must not store an answer to a request with
``Authorization`` (RFC 9111 3.5), but a browser's cache or a misbehaving proxy may,
and a 404 or a 405 is cacheable by default. A router dependency would miss the
answers given before or without one (the token check's 401/403/429 run first, a path
no route serves is the router's 404, a malformed query is a 422 raised before the
dependencies), so this is a pure ASGI middleware on the path.

Cost for everyone else (the ``/v1`` hot routes): one ``startswith`` on the path the
router routes (Starlette's ``get_route_path``, so ``uvicorn --root-path /genrec`` is
covered as the dashboard's headers are). A 500 is answered outside every middleware;
``app.core.errors`` sends it with ``no-store`` itself.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.route_path import route_path, under

PREFIX = "/admin"
NO_STORE = "no-store"
_NO_STORE = (b"cache-control", NO_STORE.encode())


class AdminNoStore:
    """Adds ``Cache-Control: no-store`` (replacing any other) to answers under ``/admin``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not under(route_path(scope), PREFIX):
            await self.app(scope, receive, send)
            return

        async def send_no_store(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() != _NO_STORE[0]]
                message["headers"] = [*kept, _NO_STORE]
            await send(message)

        await self.app(scope, receive, send_no_store)
