"""Request context: an ``X-Request-ID`` on every response, per-route latency, access log.

Pure ASGI (no ``BaseHTTPMiddleware``) so streaming and exceptions pass through
untouched; the 500 handler reads the same request id from ``scope["state"]``,
and every log line written while the request runs carries it
(``app.core.logs.request_id_var``).
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any
from urllib.parse import unquote_to_bytes

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import REQUEST_ID_HEADER
from app.core.ids import hex_id
from app.core.logs import request_id_var
from app.core.metrics import Metrics

access_log = logging.getLogger("app.access")

# A client-supplied id is echoed only if it is short and harmless in logs and headers.
_SAFE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
#: Methods counted under their own name in ``genrec_request_seconds``; any other is
#: "other". h11 passes any token as the method (httptools a fixed list of ~40), and a
#: label value per made-up method would grow the registry without bound.
_LABELLED_METHODS = frozenset(
    ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE")
)


class RequestContextMiddleware:
    """Assigns/echoes the request id, observes ``genrec_request_seconds``, logs the request."""

    def __init__(self, app: ASGIApp, metrics: Metrics, log_requests: bool = True) -> None:
        self.app = app
        self.metrics = metrics
        self.log_requests = log_requests
        # (route, method, status) -> its histogram child: ``labels()`` takes a lock and
        # builds a key on every call; the set of keys is small and bounded (route templates,
        # ``_LABELLED_METHODS``).
        self._latency: dict[tuple[str, str, int], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_id(scope) or hex_id()
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.lower() != REQUEST_ID_HEADER.lower().encode()
                ]
                headers.append((REQUEST_ID_HEADER.lower().encode(), request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            undecodable = _not_utf8(scope)
            if undecodable is None:
                await self.app(scope, receive, send_with_id)
            else:  # answered here: no route may see an id the server replaced
                body = {
                    "error": "invalid_request",
                    "message": undecodable,
                    "request_id": request_id,
                }
                await JSONResponse(body, 400)(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = _route_template(scope)
            method = scope["method"] if scope["method"] in _LABELLED_METHODS else "other"
            key = (route, method, status)
            latency = self._latency.get(key)
            if latency is None:
                latency = self._latency[key] = self.metrics.request_latency.labels(
                    route=route, method=method, status=str(status)
                )
            latency.observe(elapsed)
            if self.log_requests and access_log.isEnabledFor(logging.INFO):
                access_log.info(
                    "%s %s %d",
                    scope["method"],
                    scope["path"],
                    status,
                    extra={"route": route, "status": status, "ms": round(elapsed * 1000, 2)},
                )
            request_id_var.reset(token)


def _not_utf8(scope: Scope) -> str | None:
    """Why the URL cannot be read as text, or None.

    The server decodes %-escapes with replacement: ``PUT /v1/items/%ED%A0%80`` reached the
    route as ``"\ufffd\ufffd\ufffd"`` and stored an item the client never named. Cheap on
    the usual request: the path is re-read only when it holds U+FFFD, the query only when
    it holds a %-escape.
    """
    if "\ufffd" in scope["path"]:
        raw = scope.get("raw_path")
        if raw is not None and not _utf8(unquote_to_bytes(raw)):
            return "the URL path is not UTF-8 once its %-escapes are decoded"
    query = scope.get("query_string", b"")
    if b"%" in query and not _utf8(unquote_to_bytes(query.replace(b"+", b" "))):
        return "the query string is not UTF-8 once its %-escapes are decoded"
    return None


def _utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _incoming_id(scope: Scope) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == REQUEST_ID_HEADER.lower().encode():
            text = value.decode("latin-1")
            return text if _SAFE_ID.fullmatch(text) else None
    return None


def _route_template(scope: Scope) -> str:
    """``/v1/users/{user_id}/recommendations`` rather than the raw path (bounded label set);
    the template as documented, without a parameter's converter (``{user_id:id}``).

    FastAPI names only its own routes in the scope. A mounted app (the dashboard's and
    the docs' static files) is labelled by its mount, ``/dashboard/static/{path}``, and
    a plain route without parameters (``/openapi.json``) by its path: both were counted
    as "unmatched", beside the requests for paths no route serves.
    """
    route: Any = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    if path:
        return str(path)
    if "endpoint" in scope:  # routed, but not by FastAPI
        root, mount = scope.get("app_root_path", ""), scope.get("root_path", "")
        if mount != root and mount.startswith(root):
            return f"{mount[len(root) :]}/{{path}}"
        if not scope.get("path_params"):
            return str(scope["path"])  # a route without parameters serves one path
    return "unmatched"
