"""``GENREC_ALLOWED_HOSTS``: a request whose ``Host`` names a host not on the list is a 400.

Why: with ``/v1`` open (no ``GENREC_API_KEYS``, a documented choice for private
networks), a page on a hostile site can point its own host name at the server's
address (DNS rebinding); the operator's browser then sends that page's requests,
and lets it read the answers, as same-origin. Such a request still names the
hostile host in ``Host``, which this check refuses. The default ``*`` allows any
host: nothing is installed, so nothing changes and nothing is paid.

The matching is Starlette's ``TrustedHostMiddleware`` (exact names, ``*.example.com``
for any subdomain, not ``example.com`` itself; the port is ignored; compared in lower
case), used as it is, with ``www_redirect`` off: a redirect to ``www.`` is no answer
for an API. Its own refusal is a plain-text 400 ``Invalid host header``, which is not
the API's error shape, so it is wrapped: it refuses into a ``send`` that discards the
plain text, and the refusal is answered by the app's ``HTTPException`` handler
instead (``app.core.app_answer``): the API's JSON ``invalid_host`` with the request
id, the dashboard's error page under ``/dashboard``. Health checks are not exempt: a
load balancer that probes by IP address must send an allowed ``Host`` or have that
address on the list (docs/deployment.md "Security notes").
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette._utils import parse_host_header
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.app_answer import app_answer

#: The stable error code of the refusal (``app.core.errors`` answers ``HostNotAllowed``
#: with it).
INVALID_HOST = "invalid_host"
SETTING = "GENREC_ALLOWED_HOSTS"
#: Longest Host value a refusal repeats (a DNS name has at most 253 characters).
_SHOWN = 255


def any_host(hosts: Sequence[str]) -> bool:
    """Whether ``hosts`` lets any host through (``*``): then no check is installed."""
    return "*" in hosts


def check_host_pattern(pattern: str) -> None:
    """Refuse an entry no ``Host`` header could match, with what it should look like:
    ``*``, ``*.example.com``, a name or an IP address (IPv6 in brackets), no port.
    The grammar is the one ``Host`` headers are parsed with (``parse_host_header``)."""
    name = pattern.removeprefix("*.") if pattern != "*" else "host"
    parsed = parse_host_header(name)
    if "*" in name or parsed is None or parsed.port is not None or parsed.host != name:
        raise ValueError(
            f"{pattern!r} is not a host name: give names (api.example.com), "
            "'*.example.com' for any subdomain, IP addresses ([::1] for IPv6) or '*' for "
            "any host, comma-separated, without scheme, port or path"
        )


class HostNotAllowed(HTTPException):
    """The request's ``Host`` is not on ``GENREC_ALLOWED_HOSTS`` (or missing, or not a
    host name)."""

    code = INVALID_HOST

    def __init__(self, host_header: str | None) -> None:
        parsed = parse_host_header(host_header)
        if host_header is None:
            message = "the request has no Host header"
        elif parsed is None:
            message = "the Host header is not a host name with an optional port"
        else:
            message = f"the Host header names {parsed.host[:_SHOWN]!r}"
        super().__init__(400, f"{message}; this server answers only to the hosts in {SETTING}")


async def _allowed(scope: Scope, receive: Receive, send: Send) -> None:
    """What the wrapped ``TrustedHostMiddleware`` calls for an allowed host: nothing
    (``AllowedHostsMiddleware`` then calls the app itself, with the real ``send``)."""


class AllowedHostsMiddleware:
    """Starlette's ``TrustedHostMiddleware`` with the app's own 400 (see the module)."""

    def __init__(self, app: ASGIApp, allowed_hosts: Sequence[str]) -> None:
        self.app = app
        self.check = TrustedHostMiddleware(
            _allowed, allowed_hosts=list(allowed_hosts), www_redirect=False
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refused = False

        async def discard(message: Message) -> None:  # the plain-text refusal
            nonlocal refused
            refused = True

        await self.check(scope, receive, discard)
        if not refused:
            await self.app(scope, receive, send)
            return
        host = Headers(scope=scope).get("host")
        answer = await app_answer(scope, HostNotAllowed(host), INVALID_HOST)
        await answer(scope, receive, send)
