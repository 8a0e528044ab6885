"""The dashboard's login session and CSRF tokens.

The operator types the admin token once into the login form; the server
answers with a *session cookie* that holds no secret of its own: a random
session id, a random CSRF token and the login time, signed with itsdangerous
(HMAC-SHA1 with a key derived from the admin token). The cookie is
``HttpOnly`` (no script can read it), ``SameSite=Strict`` (no other site's
page sends it), ``Secure`` when the request came over HTTPS, and scoped to
``/dashboard``.

Why signed: every replica can check it with nothing shared but the admin
token, which the replicas already share. Logout, though, must end the session
on every replica, not only delete the cookie in this browser (a copied cookie
would stay valid until it expires): it records the session id in the
database (``dashboard_revoked_sessions``, kept until the cookie's own expiry,
``GENREC_DASHBOARD_SESSION_HOURS``), and every dashboard request looks its id
up there (one primary-key read). When the database cannot answer, the
dashboard answers 503 rather than accept a session it cannot check (the
admin API's bearer token does not depend on it). Changing the admin token
still ends every session at once (the signing key is derived from it).

CSRF: every state-changing request (every POST under ``/dashboard``) must
carry the session's CSRF token, as the ``csrf_token`` form field or the
``X-CSRF-Token`` header (htmx sends the header, ``base.html``); the login form
itself is protected by a signed one-off nonce cookie (double submit).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from app.api.deps import services_of
from app.core.db import session_scope
from app.repository import dashboard_session_revoked, revoke_dashboard_session

SESSION_COOKIE = "genrec_dashboard"
LOGIN_COOKIE = "genrec_dashboard_login"
COOKIE_PATH = "/dashboard"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
LOGIN_NONCE_MAX_AGE_S = 3600


class DashboardDisabled(Exception):
    """No admin token is configured: the dashboard is off, like the admin API."""


class LoginRequired(Exception):
    """No valid session cookie: the browser is sent to the login form."""


class CsrfRejected(Exception):
    """A state-changing request without the session's CSRF token."""


class SessionUncheckable(Exception):
    """The database could not say whether the session was ended by a logout (a 503)."""


@dataclass(frozen=True)
class DashboardSession:
    """A logged-in browser: the CSRF token its forms and htmx requests must send back."""

    csrf_token: str
    issued_at: float
    session_id: str


def admin_token(request: Request) -> str:
    """The configured admin token; ``DashboardDisabled`` when there is none."""
    configured = services_of(request).settings.admin_token
    token = configured.get_secret_value().strip() if configured is not None else ""
    if not token:
        raise DashboardDisabled
    return token


def _serializer(token: str, purpose: str) -> URLSafeTimedSerializer:
    # The key is derived, not the token itself: a signature reveals nothing usable as a
    # bearer token, and rotating GENREC_ADMIN_TOKEN invalidates every cookie.
    key = hmac.new(token.encode(), b"genrec-dashboard-cookie-v1", hashlib.sha256).hexdigest()
    return URLSafeTimedSerializer(key, salt=f"genrec-dashboard-{purpose}")


def _session_max_age_s(request: Request) -> int:
    return int(services_of(request).settings.dashboard_session_hours * 3600)


def token_matches(offered: str, token: str) -> bool:
    """Constant-time comparison of a typed token with the configured one."""
    return hmac.compare_digest(offered.strip().encode(), token.encode())


def _set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


# --------------------------------------------------------------------------- session


def start_session(request: Request, response: Response) -> None:
    """Set a fresh session cookie (after the token was checked) and drop the login nonce."""
    token = admin_token(request)
    payload = {
        "sid": secrets.token_urlsafe(24),
        "csrf": secrets.token_urlsafe(32),
        "at": time.time(),
    }
    value = _serializer(token, "session").dumps(payload)
    _set_cookie(request, response, SESSION_COOKIE, value, _session_max_age_s(request))
    response.delete_cookie(LOGIN_COOKIE, path=COOKIE_PATH)


def end_session(request: Request, session: DashboardSession, response: Response) -> None:
    """Revoke ``session`` on every replica, then delete this browser's cookie.

    ``SessionUncheckable`` when the database cannot record it: the operator is
    told, instead of being logged out here while the cookie stays valid elsewhere.
    """
    expires = datetime.fromtimestamp(session.issued_at + _session_max_age_s(request), UTC)
    try:
        with session_scope(services_of(request).sessions) as db:
            revoke_dashboard_session(db, session.session_id, expires)
    except IntegrityError:
        pass  # the same session logged out at once elsewhere: revoked either way
    except SQLAlchemyError as exc:
        raise SessionUncheckable from exc
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH)


def read_session(request: Request) -> DashboardSession | None:
    """The request's session, or None when the cookie is missing, forged, expired or
    logged out (``SessionUncheckable`` when the database cannot say which)."""
    token = admin_token(request)
    raw = request.cookies.get(SESSION_COOKIE)
    if not raw:
        return None
    try:
        payload = _serializer(token, "session").loads(raw, max_age=_session_max_age_s(request))
    except BadSignature:  # includes SignatureExpired
        return None
    if not isinstance(payload, dict) or not all(
        isinstance(payload.get(key), str) for key in ("sid", "csrf")
    ):
        return None  # forged, or issued before sessions had ids: log in again
    try:
        with session_scope(services_of(request).sessions) as db:
            if dashboard_session_revoked(db, payload["sid"]):
                return None
    except SQLAlchemyError as exc:
        raise SessionUncheckable from exc
    return DashboardSession(
        csrf_token=payload["csrf"],
        issued_at=float(payload.get("at", 0.0)),
        session_id=payload["sid"],
    )


def require_session(request: Request) -> DashboardSession:
    """Dependency of every dashboard page and action except the login form."""
    session = read_session(request)
    if session is None:
        raise LoginRequired
    return session


SessionDep = Annotated[DashboardSession, Depends(require_session)]


async def require_csrf(request: Request, session: SessionDep) -> DashboardSession:
    """Dependency of every POST: the session's CSRF token, as a header or a form field."""
    offered = request.headers.get(CSRF_HEADER)
    if offered is None:
        form = await request.form()  # Starlette caches it; the handler's Form() reads it again
        field = form.get(CSRF_FIELD)
        offered = field if isinstance(field, str) else None
    if not offered or not hmac.compare_digest(offered.encode(), session.csrf_token.encode()):
        raise CsrfRejected
    return session


CsrfDep = Annotated[DashboardSession, Depends(require_csrf)]


# --------------------------------------------------------------------------- login nonce


def new_login_nonce() -> str:
    """A one-off value for the login form's hidden field (see ``remember_login_nonce``)."""
    return secrets.token_urlsafe(24)


def remember_login_nonce(request: Request, response: Response, nonce: str) -> None:
    """Mirror the form's nonce in a signed cookie, which the POST must match."""
    value = _serializer(admin_token(request), "login").dumps(nonce)
    _set_cookie(request, response, LOGIN_COOKIE, value, LOGIN_NONCE_MAX_AGE_S)


def login_nonce_matches(request: Request, offered: str) -> bool:
    """The login form's hidden nonce equals the one signed into this browser's cookie."""
    raw = request.cookies.get(LOGIN_COOKIE)
    if not raw or not offered:
        return False
    try:
        expected = _serializer(admin_token(request), "login").loads(
            raw, max_age=LOGIN_NONCE_MAX_AGE_S
        )
    except BadSignature:
        return False
    return isinstance(expected, str) and hmac.compare_digest(expected.encode(), offered.encode())
