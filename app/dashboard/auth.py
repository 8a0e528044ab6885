"""The dashboard's login session and CSRF tokens.

The operator types the admin token once into the login form; the server
answers with a *session cookie* that holds no secret of its own: a random
session id, a random CSRF token and the login time, signed with itsdangerous
(HMAC-SHA1 with a key derived from the admin token). The cookie is
``HttpOnly`` (no script can read it), ``SameSite=Strict`` (no other site's
page sends it), ``Secure`` when the request came over HTTPS, and scoped to
``/dashboard`` under the root path (``app.dashboard.urls``).

Why signed: every replica can check it with nothing shared but the admin
token, which the replicas already share. Logout, though, must end the session
on every replica, not only delete the cookie in this browser (a copied cookie
would stay valid until it expires): it records the session id in the
database (``dashboard_revoked_sessions``, kept until the cookie's own expiry,
``GENREC_DASHBOARD_SESSION_HOURS``), and every dashboard request looks its id
up there (one primary-key read). When the database cannot answer, the
dashboard answers 503 rather than accept a session it cannot check (the
admin API's bearer token does not depend on it): a page is a 503 page, a
polled panel a fragment without data that says so, the login form renders
with a note. Logout checks the signature and CSRF token only (logging out
twice is harmless); when the database cannot record it, the session stays
valid and the page says so, offering to retry or to delete this browser's
cookie anyway. Changing the admin token still ends every session at once
(the signing key is derived from it).

CSRF: every state-changing request (every POST under ``/dashboard``) must
carry the session's CSRF token, as the ``csrf_token`` form field or the
``X-CSRF-Token`` header (htmx sends the header, ``base.html``); the login form
itself carries a signed, time-limited nonce bound to a random per-browser id in
the login cookie (double submit; several login tabs share the id, so each of
their forms works). Two forms loaded at the same moment, before the browser had
a login cookie, got different ids and only the last one's cookie stayed: a nonce
bound to another id is still taken when the browser says the form was sent from
one of this origin's own pages (``Sec-Fetch-Site: same-origin``, a header no
page can set), which is what the binding proves. Logging in while this browser
already has a valid session (a second login tab) renews that session, same id
and CSRF token, new login time: a new one would replace the cookie the other
tabs' pages were rendered for, and their forms' CSRF token with it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import quote, unquote, urlsplit

from fastapi import Depends, Request, Response
from fastapi.responses import RedirectResponse
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from app.api.deps import services_of
from app.core.db import session_scope
from app.core.route_path import route_path
from app.dashboard.urls import browser_path, cookie_path
from app.repository import dashboard_session_revoked, revoke_dashboard_session

SESSION_COOKIE = "genrec_dashboard"
LOGIN_COOKIE = "genrec_dashboard_login"
FLASH_COOKIE = "genrec_dashboard_flash"
FLASH_MAX_AGE_S = 120
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
        path=cookie_path(request),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


# --------------------------------------------------------------------------- session


def start_session(
    request: Request, response: Response, renewing: DashboardSession | None = None
) -> None:
    """Set a fresh session cookie (after the token was checked).

    ``renewing``: this browser's live session (``live_session``), whose id and CSRF
    token the new cookie keeps, with a fresh login time: a second login tab must not
    replace the token the other tabs' forms carry, yet its login should last the full
    session hours. The login cookie stays: another tab's login form, bound to it,
    still works."""
    token = admin_token(request)
    payload = {
        "sid": renewing.session_id if renewing else secrets.token_urlsafe(24),
        "csrf": renewing.csrf_token if renewing else secrets.token_urlsafe(32),
        "at": time.time(),
    }
    value = _serializer(token, "session").dumps(payload)
    _set_cookie(request, response, SESSION_COOKIE, value, _session_max_age_s(request))


def end_session(request: Request, session: DashboardSession, response: Response) -> None:
    """Revoke ``session`` on every replica, then delete this browser's cookie.

    ``SessionUncheckable`` when the database cannot record it: the operator is
    told, instead of being logged out here while the cookie stays valid elsewhere.
    """
    expires = session_expires_at(request, session)
    try:
        with session_scope(services_of(request).sessions) as db:
            revoke_dashboard_session(db, session.session_id, expires)
    except IntegrityError:
        pass  # the same session logged out at once elsewhere: revoked either way
    except SQLAlchemyError as exc:
        raise SessionUncheckable from exc
    response.delete_cookie(SESSION_COOKIE, path=cookie_path(request))


def signed_session(request: Request) -> DashboardSession | None:
    """The session the cookie names if its signature and age are valid, without asking
    the database whether it was logged out: only for logging out (again)."""
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
    return DashboardSession(
        csrf_token=payload["csrf"],
        issued_at=float(payload.get("at", 0.0)),
        session_id=payload["sid"],
    )


def read_session(request: Request) -> DashboardSession | None:
    """The request's session, or None when the cookie is missing, forged, expired or
    logged out (``SessionUncheckable`` when the database cannot say which)."""
    session = signed_session(request)
    if session is None:
        return None
    try:
        with session_scope(services_of(request).sessions) as db:
            if dashboard_session_revoked(db, session.session_id):
                return None
    except SQLAlchemyError as exc:
        raise SessionUncheckable from exc
    return session


def session_expires_at(request: Request, session: DashboardSession) -> datetime:
    """When ``session``'s cookie stops being accepted anyway (login + session hours)."""
    return datetime.fromtimestamp(session.issued_at + _session_max_age_s(request), UTC)


def require_session(request: Request) -> DashboardSession:
    """Dependency of every dashboard page and action except the login form."""
    session = read_session(request)
    if session is None:
        raise LoginRequired
    return session


SessionDep = Annotated[DashboardSession, Depends(require_session)]


async def check_csrf(request: Request, session: DashboardSession) -> None:
    """``CsrfRejected`` unless the request carries ``session``'s CSRF token, as the
    ``X-CSRF-Token`` header or the ``csrf_token`` form field."""
    offered = request.headers.get(CSRF_HEADER)
    if offered is None:
        form = await request.form()  # Starlette caches it; the handler's Form() reads it again
        field = form.get(CSRF_FIELD)
        offered = field if isinstance(field, str) else None
    if not offered or not hmac.compare_digest(offered.encode(), session.csrf_token.encode()):
        raise CsrfRejected


async def require_csrf(request: Request, session: SessionDep) -> DashboardSession:
    """Dependency of every POST: the session's CSRF token, as a header or a form field."""
    await check_csrf(request, session)
    return session


CsrfDep = Annotated[DashboardSession, Depends(require_csrf)]


# --------------------------------------------------------------------------- one-shot notices


def redirect_with_notice(
    request: Request, session: DashboardSession, url: str, notice: str
) -> RedirectResponse:
    """Post/Redirect/Get: a 303 to the page ``url`` (an app path: the root path is put
    before it) that shows what an action did, ``notice``
    travelling in a short-lived cookie signed for this session, which the next page
    shows once and deletes (``take_notice``). Reloading that page, or going Back and
    Forward to it, repeats nothing."""
    response = RedirectResponse(browser_path(request, url), status_code=303)
    value = _serializer(admin_token(request), "flash").dumps(
        {"sid": session.session_id, "notice": notice}
    )
    _set_cookie(request, response, FLASH_COOKIE, value, FLASH_MAX_AGE_S)
    return response


def take_notice(request: Request, session: DashboardSession) -> str | None:
    """The notice ``redirect_with_notice`` left for this session, if any (the caller
    deletes the cookie). Signed, so no other page of the site can plant one."""
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    try:
        payload = _serializer(admin_token(request), "flash").loads(raw, max_age=FLASH_MAX_AGE_S)
    except BadSignature:
        return None
    if not isinstance(payload, dict) or payload.get("sid") != session.session_id:
        return None
    notice = payload.get("notice")
    return notice if isinstance(notice, str) else None


# --------------------------------------------------------------------------- where to go back to

LOGIN_PATH = "/dashboard/login"
HOME_PATH = "/dashboard/overview"
#: Never a place to come back to after logging in.
_NOT_NEXT = (LOGIN_PATH, "/dashboard/logout", "/dashboard", HOME_PATH)
_URL_TEXT = re.compile(r"[\x21-\x7e]{1,2000}")  # printable ASCII: an encoded URL, no spaces


def safe_next(value: str | None) -> str | None:
    """``value`` when it is a dashboard page of this server to return to after login,
    as a path with its query; else None (no open redirect: no scheme, no host, no
    ``//`` or backslash, no dot segments, nothing outside ``/dashboard/``)."""
    if not value or not _URL_TEXT.fullmatch(value) or "\\" in value:
        return None
    parts = urlsplit(value)
    path = parts.path
    if parts.scheme or parts.netloc or not path.startswith("/dashboard/"):
        return None
    if any(segment in (".", "..") for segment in unquote(path).split("/")):
        return None
    if path in _NOT_NEXT or path.startswith("/dashboard/static/"):
        return None
    return path + (f"?{parts.query}" if parts.query else "")


def login_url(request: Request, next_path: str | None) -> str:
    """The login form as the browser asks for it (under the root path), asked to come back
    to ``next_path`` (an app path, if it is safe) afterwards; ``next`` stays an app path,
    which the login's redirect puts under the root path again (``redirect_to_page``)."""
    target = safe_next(next_path)
    login = browser_path(request, LOGIN_PATH)
    return login if target is None else f"{login}?next={quote(target, safe='/')}"


def redirect_to_page(request: Request, path: str) -> RedirectResponse:
    """A 303 to the dashboard page ``path`` (an app path), under the root path."""
    return RedirectResponse(browser_path(request, path), status_code=303)


def page_to_return_to(request: Request) -> str | None:
    """Where the browser was when its session turned out missing or expired: the page
    itself for a GET, the page a form was sent from (``Referer``) for a POST, the
    page around a polled fragment (htmx's ``HX-Current-URL``); as an encoded path that
    the router routes (``_route_part``: without ``uvicorn --root-path``'s prefix)."""
    if request.headers.get("HX-Request"):
        return _same_origin_path(request, request.headers.get("HX-Current-URL"))
    if request.method in ("GET", "HEAD"):
        raw = request.scope.get("raw_path") or request.url.path.encode()
        query = request.scope.get("query_string", b"")
        path = _route_part(request, raw.decode("latin-1"))
        return path + (f"?{query.decode('latin-1')}" if query else "")
    return _same_origin_path(request, request.headers.get("Referer"))


def _same_origin_path(request: Request, url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    if parts.netloc != request.headers.get("host"):
        return None
    return _route_part(request, parts.path) + (f"?{parts.query}" if parts.query else "")


def _route_part(request: Request, path: str) -> str:
    """``path`` (as sent: still %-encoded) without the root path, stripped as the router
    strips it (Starlette's ``get_route_path``, on this path rather than the decoded one).

    Under ``uvicorn --root-path /genrec`` a page's raw path, and the browser's URL of
    it, is ``/genrec/dashboard/...``, which ``safe_next`` refuses as outside the
    dashboard: a login after an expired session went to the overview instead of back.
    Encoded, because decoding would change the page (``a%2Fb`` is one id, ``a/b`` two
    segments); ``safe_next`` still checks what is left."""
    return route_path({"path": path, "root_path": request.scope.get("root_path", "")})


# --------------------------------------------------------------------------- login nonce


@dataclass(frozen=True)
class LoginNonce:
    """The login form's hidden ``nonce`` and the browser id it is bound to."""

    value: str
    browser: str


def _login_browser(request: Request) -> str | None:
    """This browser's id from its login cookie, if the cookie is valid."""
    raw = request.cookies.get(LOGIN_COOKIE)
    if not raw:
        return None
    try:
        browser = _serializer(admin_token(request), "login").loads(
            raw, max_age=LOGIN_NONCE_MAX_AGE_S
        )
    except BadSignature:
        return None
    return browser if isinstance(browser, str) and browser else None


def new_login_nonce(request: Request) -> LoginNonce:
    """A nonce for one login form: signed and time-limited, bound to this browser's id.

    The id (random) lives in the login cookie, which every form of this browser
    shares and reuses: a second login tab no longer replaces the first one's
    nonce. Binding it to the cookie keeps the double-submit protection: another
    site can neither read the cookie nor a form's nonce, so it cannot make up a
    login POST the server accepts.
    """
    browser = _login_browser(request) or secrets.token_urlsafe(18)
    value = _serializer(admin_token(request), "login-form").dumps(
        {"b": browser, "n": secrets.token_urlsafe(12)}
    )
    return LoginNonce(value=value, browser=browser)


def remember_login_nonce(request: Request, response: Response, nonce: LoginNonce) -> None:
    """(Re)set the login cookie with the browser id ``nonce`` is bound to."""
    value = _serializer(admin_token(request), "login").dumps(nonce.browser)
    _set_cookie(request, response, LOGIN_COOKIE, value, LOGIN_NONCE_MAX_AGE_S)


def login_nonce_matches(request: Request, offered: str) -> bool:
    """The form's nonce is one this server signed within the hour, for this browser.

    "For this browser": bound to the id in its login cookie, or, when the cookie holds
    another id (two forms loaded at once each set one; the last stayed), sent by a page
    of this origin as the browser itself attests (``Sec-Fetch-Site``). Another site's
    page can do neither."""
    if not offered:
        return False
    try:
        payload = _serializer(admin_token(request), "login-form").loads(
            offered, max_age=LOGIN_NONCE_MAX_AGE_S
        )
    except BadSignature:
        return False
    bound = payload.get("b") if isinstance(payload, dict) else None
    if not isinstance(bound, str):
        return False
    browser = _login_browser(request)
    if browser is not None and hmac.compare_digest(bound.encode(), browser.encode()):
        return True
    return request.headers.get("Sec-Fetch-Site") == "same-origin"


def live_session(request: Request) -> DashboardSession | None:
    """This browser's session if it is valid and not logged out, for a login to renew.

    A login renews it rather than start another: a new session would replace the
    cookie the browser's other tabs were rendered for, and their CSRF token with it.
    A session the database cannot check is not renewed (a new one costs nothing then);
    a logged-out one never is."""
    try:
        return read_session(request)
    except SessionUncheckable:
        return None
