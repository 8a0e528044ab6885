"""Bearer-token guard of the admin API.

No token configured (``GENREC_ADMIN_TOKEN`` unset or blank) means the admin
API is *disabled* (403 saying so), never open. A missing or wrong token is a
401 ``unauthorized`` with ``WWW-Authenticate: Bearer`` (the code the ``/v1`` API-key
check answers, ``app.core.api_keys``, so a client tells a refused credential from
any other error by one code). The comparison is constant-time (``hmac.compare_digest``) and the token
appears in no log line and no error message. Too many wrong tokens from one
address lock it out for a while (429, ``app.core.auth_throttle``).

The check runs before the request's body is read (``AdminRoute``): FastAPI reads
and parses a body parameter before it solves the route's dependencies, so a
dependency alone let anyone without the token make the server parse a JSON body
of up to ``GENREC_MAX_BODY_BYTES`` on its event loop, locked out or not.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param

from app.api.body import StrictJsonRoute
from app.api.deps import Services, ServicesDep, services_of
from app.core.errors import ApiError

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="AdminToken",
    description="the server's GENREC_ADMIN_TOKEN, as 'Authorization: Bearer <token>'",
)


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


def client_address(request: Request) -> str:
    """The address failures are counted against (uvicorn's, proxy headers applied)."""
    return request.client.host if request.client is not None else "-"


def locked_out(retry_after: int) -> ApiError:
    return ApiError(
        429,
        "too_many_failures",
        f"too many wrong admin tokens from this address; try again in {retry_after} s",
        headers={"Retry-After": str(retry_after)},
    )


#: Set on a request's state once its token passed (``AdminRoute``): the dependency then
#: does not check, or count, the same request twice.
_CHECKED = "admin_token_checked"


def require_admin(
    request: Request,
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    """Let the request through only with the configured admin token (the route's
    dependency: it documents the scheme in ``/openapi.json``; ``AdminRoute`` has
    usually checked already, before the body was read)."""
    if getattr(request.state, _CHECKED, False):
        return
    check_admin(request, services, credentials)


def check_admin(
    request: Request, services: Services, credentials: HTTPAuthorizationCredentials | None
) -> None:
    """403 without a configured token, 429 while locked out, 401 for a missing or wrong
    one; returns (and clears the address's failures) for the right one."""
    configured = services.settings.admin_token
    expected = configured.get_secret_value().strip() if configured is not None else ""
    if not expected:
        raise ApiError(
            403,
            "admin_disabled",
            "the admin API is disabled: set GENREC_ADMIN_TOKEN on the server to enable it",
        )
    client, throttle = client_address(request), services.auth_throttle
    wait = throttle.retry_after(client)
    if wait is not None:
        raise locked_out(wait)
    if credentials is None:
        throttle.failed(client)
        raise _unauthorized("missing admin token: send 'Authorization: Bearer <token>'")
    if not hmac.compare_digest(credentials.credentials.encode(), expected.encode()):
        throttle.failed(client)
        raise _unauthorized("invalid admin token")
    throttle.succeeded(client)
    setattr(request.state, _CHECKED, True)


def carries_admin_token(request: Request, services: Services) -> bool:
    """Whether the request carries the right admin token, for answers that only add
    details with it (``/readyz``) and must never refuse without it: no token, a wrong
    one, no configured token or a locked-out address all mean False, not 401/403/429.

    A wrong token still counts as a failure against the address (and a locked-out one is
    not compared), or such an endpoint would be a way round the lockout to guess tokens;
    one of ``GENREC_API_KEYS`` is no guess (a client that sends its key everywhere).
    """
    configured = services.settings.admin_token
    expected = configured.get_secret_value().strip() if configured is not None else ""
    scheme, token = get_authorization_scheme_param(request.headers.get("Authorization"))
    if not expected or scheme.lower() != "bearer" or not token:
        return False
    client, throttle = client_address(request), services.auth_throttle
    if throttle.retry_after(client) is not None:
        return False
    if not hmac.compare_digest(token.encode(), expected.encode()):
        keys = (key.get_secret_value().encode() for key in services.settings.api_keys)
        if not any([hmac.compare_digest(token.encode(), key) for key in keys]):
            throttle.failed(client)
        return False
    throttle.succeeded(client)
    return True


Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class AdminRoute(StrictJsonRoute):
    """A route that checks the admin token before FastAPI reads the body, when
    ``require_admin`` is among its dependencies (the router's included); any other
    route of the router is left as it is. The route class of every router that has
    admin operations (a ``StrictJsonRoute``: the token is checked before the body's
    keys)."""

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()
        if not any(d.dependency is require_admin for d in self.dependencies):
            return handler

        async def token_first(request: Request) -> Response:
            check_admin(request, services_of(request), await bearer(request))
            return await handler(request)

        return token_first
