"""Bearer-token guard of the admin API.

No token configured (``GENREC_ADMIN_TOKEN`` unset or blank) means the admin
API is *disabled* (403 saying so), never open. A missing or wrong token is a
401. The comparison is constant-time (``hmac.compare_digest``) and the token
appears in no log line and no error message. Too many wrong tokens from one
address lock it out for a while (429, ``app.core.auth_throttle``).
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.api.deps import ServicesDep
from app.core.errors import ApiError

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="AdminToken",
    description="the server's GENREC_ADMIN_TOKEN, as 'Authorization: Bearer <token>'",
)


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(status_code=401, detail=message, headers={"WWW-Authenticate": "Bearer"})


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


def require_admin(
    request: Request,
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    """Let the request through only with the configured admin token."""
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
