"""API keys of the public ``/v1`` API (``GENREC_API_KEYS``): one check per request.

Unset, ``/v1`` is open as it always was (the server warns once at start-up).
Set, every ``/v1`` request needs ``Authorization: Bearer <key>`` with one of
the keys, or the admin token (an operator's curl); anything else is a 401
with ``WWW-Authenticate: Bearer`` and the API's JSON error body. Several keys
at once make a rotation possible: add the new key, move the clients, remove
the old one. A key grants no admin route: those keep their own check
(``app.api.admin_auth``), which only the admin token passes.

Why a pure ASGI middleware, added only when keys are set, rather than a router
dependency: it costs a request one header scan and one ``compare_digest`` per
key, with nothing at all when the API is open; FastAPI's dependency machinery
costs more per request (``benchmarks/api_key_check.py`` measures both). And
it guards every ``/v1`` path, the ones no route serves included (a 404 would
tell a client without a key which paths exist).

Wrong keys and the per-address throttle (``app.core.auth_throttle``): an API
key never meets it. A valid key passes even from a locked-out address, and a
wrong one is not counted as such, because a key is at least 16 characters of
a random secret (``app.core.config.check_api_key``), too many to guess at any
rate, while a lockout per address would let one client still sending a
rotated-out key from behind a NAT (or one frontend's outbound proxy) lock out
every other client there. But ``/v1`` also takes the admin token, so an
unthrottled ``/v1`` would be a way around the admin throttle: a wrong
credential counts as a failed admin token against the address (when an admin
token is configured), and a locked-out address gets 429 for any credential
that is no API key, the admin token included, as on ``/admin``. A missing
credential is no guess and is not counted. Every refusal is counted in
``genrec_api_key_refused_total`` by reason; no key is ever logged or echoed.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.auth_throttle import AuthThrottle
from app.core.metrics import Metrics
from app.core.openapi_schema import REF_TEMPLATE, edit_openapi
from app.core.route_path import route_path, under

#: The paths the keys guard: the public API (``/admin``, ``/dashboard``, health,
#: ``/metrics`` and the docs are outside it).
PREFIX = "/v1"
#: The security scheme's name in ``/openapi.json`` (``/docs``' Authorize dialog).
SCHEME = "ApiKey"
#: The admin token's scheme (``app.api.admin_auth.bearer``), also accepted on ``/v1``.
ADMIN_SCHEME = "AdminToken"
CHALLENGE = {"WWW-Authenticate": "Bearer"}
#: (status, body without its request id, headers) of a refused request.
Refusal = tuple[int, dict[str, Any], dict[str, str]]
MISSING = "missing API key: send 'Authorization: Bearer <key>'"
INVALID = "invalid API key"
#: The error body every refusal has (``app.schemas.ErrorResponse``).
ERROR_REF = REF_TEMPLATE.format(model="ErrorResponse")
#: The answers of the check each guarded operation documents.
MEANINGS = {
    "401": "missing or wrong API key (`Authorization: Bearer <key>`; `unauthorized`)",
    "429": "too many wrong credentials from this address while an admin token is configured "
    "(`too_many_failures`; `Retry-After` says how long); a valid API key still passes",
}


#: The start-up warning of a server without keys.
OPEN_API_WARNING = (
    "GENREC_API_KEYS is not set: the /v1 API (every user's recommendations, interaction "
    "writes) is open to anyone who can reach this server; set keys to require them"
)


class ApiKeyMiddleware:
    """Refuses a ``/v1`` request without one of ``keys`` (or the admin token) as a bearer."""

    def __init__(
        self,
        app: ASGIApp,
        keys: Sequence[str],
        admin_token: str | None,
        metrics: Metrics,
        throttle: Callable[[], AuthThrottle],
    ) -> None:
        self.app = app
        self.keys = tuple(key.encode() for key in keys)
        self.admin = admin_token.encode() if admin_token else None
        self.throttle = throttle
        # Children made once: ``labels()`` takes a lock and builds a key on every call.
        self.refused = {
            reason: metrics.api_key_refused.labels(reason=reason)
            for reason in ("missing", "invalid", "locked_out")
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _guarded(scope):
            await self.app(scope, receive, send)
            return
        credential = bearer_credential(scope)
        refusal: Refusal | None
        if credential is None:
            refusal = self._refuse("missing", 401, MISSING, CHALLENGE)
        else:
            refusal = self._check(credential, scope)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        status, body, headers = refusal
        body["request_id"] = scope.get("state", {}).get("request_id", "-")
        await JSONResponse(body, status, headers=headers)(scope, receive, send)

    def _check(self, credential: bytes, scope: Scope) -> Refusal | None:
        """None to let the request through, else how to refuse it."""
        matched = False
        for key in self.keys:  # every key, whichever matches: the time says nothing
            matched |= hmac.compare_digest(credential, key)
        if matched:
            return None
        if self.admin is None:
            return self._refuse("invalid", 401, INVALID, CHALLENGE)
        client = scope["client"][0] if scope.get("client") else "-"
        throttle = self.throttle()
        wait = throttle.retry_after(client)
        if wait is not None:
            message = (
                f"too many wrong API keys or admin tokens from this address; try again in {wait} s"
            )
            return self._refuse("locked_out", 429, message, {"Retry-After": str(wait)})
        if hmac.compare_digest(credential, self.admin):
            throttle.succeeded(client)
            return None
        throttle.failed(client)
        return self._refuse("invalid", 401, INVALID, CHALLENGE)

    def _refuse(self, reason: str, status: int, message: str, headers: dict[str, str]) -> Refusal:
        """Counted; the body is the API's error shape (``app.core.errors``), id added later."""
        self.refused[reason].inc()
        code = "too_many_failures" if status == 429 else "unauthorized"
        return status, {"error": code, "message": message}, headers


def _guarded(scope: Scope) -> bool:
    """Whether the path is the public API's, as the router sees it: Starlette's own
    ``get_route_path`` (``app.core.route_path``), the function its routes match with.

    A rule of our own (strip the root path wherever the path starts with it) let
    ``uvicorn --root-path /v`` (h11) serve ``GET 1/users/u1/recommendations`` without a key:
    the path ``/v1/...`` lost ``/v`` here and was not guarded, while the router, which
    strips a root path only before a ``/``, routed it to ``/v1/...``.
    """
    return under(route_path(scope), PREFIX)


def bearer_credential(scope: Scope) -> bytes | None:
    """The credential of the request's ``Authorization: Bearer``, or None.

    Raw bytes from the ASGI headers (names arrive lower-case): nothing is decoded
    on the hot path, and the keys are printable ASCII, compared as bytes.
    """
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, credential = value.partition(b" ")
            if scheme.lower() != b"bearer":
                return None
            return credential.strip() or None
    return None


def document_api_keys(app: FastAPI) -> None:
    """Declare the keys in ``/openapi.json``: the bearer scheme (so ``/docs`` shows its
    Authorize button), on every ``/v1`` operation as an alternative to the admin token,
    and the 401 and 429 answers of the check. Admin operations under ``/v1`` keep the
    admin token alone: a key does not open them."""

    def declare(schema: dict[str, Any]) -> None:
        schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
        schemes[SCHEME] = {
            "type": "http",
            "scheme": "bearer",
            "description": "one of the server's GENREC_API_KEYS, as 'Authorization: Bearer "
            "<key>' (the admin token is accepted too)",
        }
        for path, operations in schema.get("paths", {}).items():
            if not (path == PREFIX or path.startswith(PREFIX + "/")):
                continue
            for operation in operations.values():
                if not isinstance(operation, dict) or "responses" not in operation:
                    continue
                if "security" not in operation:
                    admin: list[dict[str, list[str]]] = (
                        [{ADMIN_SCHEME: []}] if ADMIN_SCHEME in schemes else []
                    )
                    operation["security"] = [{SCHEME: []}, *admin]
                responses = operation["responses"]
                for status, meaning in MEANINGS.items():
                    responses.setdefault(
                        status,
                        {
                            "description": meaning,
                            "content": {"application/json": {"schema": {"$ref": ERROR_REF}}},
                        },
                    )

    edit_openapi(app, declare)
