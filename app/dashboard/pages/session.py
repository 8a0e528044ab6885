"""Login form, login, logout; ``/dashboard`` itself sends the browser to the overview."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from app.api.admin_auth import client_address
from app.api.deps import services_of
from app.dashboard.auth import (
    HOME_PATH,
    LOGIN_PATH,
    SESSION_COOKIE,
    SessionDep,
    SessionUncheckable,
    admin_token,
    check_csrf,
    end_session,
    live_session,
    login_nonce_matches,
    new_login_nonce,
    read_session,
    redirect_to_page,
    remember_login_nonce,
    safe_next,
    session_expires_at,
    signed_session,
    start_session,
    token_matches,
)
from app.dashboard.templating import render
from app.dashboard.urls import cookie_path

router = APIRouter()


@router.get("/dashboard")
def index(request: Request, session: SessionDep) -> Response:
    return redirect_to_page(request, HOME_PATH)


def _login_form(
    request: Request,
    error: str | None,
    status_code: int,
    next_path: str | None,
    database_down: bool = False,
) -> HTMLResponse:
    nonce = new_login_nonce(request)
    response = render(
        request,
        "login.html",
        None,
        status_code=status_code,
        error=error,
        nonce=nonce.value,
        next_path=safe_next(next_path) or "",
        database_down=database_down,
    )
    remember_login_nonce(request, response, nonce)
    return response


@router.get("/dashboard/login", response_class=HTMLResponse)
def login_form(request: Request, next: str | None = None) -> Response:
    """The form; ``next``: the dashboard page to come back to (``auth.safe_next``).

    Logged in already: on to ``next``. A session the database cannot check (it is
    down): the form anyway, saying why the pages answer 503 meanwhile."""
    try:
        if read_session(request) is not None:
            return redirect_to_page(request, safe_next(next) or HOME_PATH)
        database_down = False
    except SessionUncheckable:
        database_down = True
    return _login_form(request, None, 200, next, database_down=database_down)


@router.post("/dashboard/login", response_class=HTMLResponse)
def login(
    request: Request,
    token: Annotated[str, Form()] = "",
    nonce: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "",
) -> Response:
    """Exchange the admin token for a session cookie (wrong tokens count towards the
    address's lockout, as on the admin API), then go to ``next`` or the overview.

    A browser that is logged in already (another tab logged in since this form was
    loaded) keeps its session, renewed (``auth.start_session``)."""
    expected = admin_token(request)
    if not login_nonce_matches(request, nonce):
        return _login_form(request, "The form expired; type the token again.", 403, next)
    client, throttle = client_address(request), services_of(request).auth_throttle
    wait = throttle.retry_after(client)
    if wait is not None:
        refused = _login_form(
            request, f"Too many wrong tokens from this address; try again in {wait} s.", 429, next
        )
        refused.headers["Retry-After"] = str(wait)
        return refused
    if not token_matches(token, expected):
        throttle.failed(client)
        return _login_form(request, "Wrong admin token.", 401, next)
    throttle.succeeded(client)
    response = redirect_to_page(request, safe_next(next) or HOME_PATH)
    start_session(request, response, renewing=live_session(request))
    return response


@router.post("/dashboard/logout")
async def logout(request: Request, forget: Annotated[str, Form()] = "") -> Response:
    """End the session on every replica (``end_session``), then back to the login form.

    The session is checked by its signature and CSRF token only: logging out a
    session that was logged out already changes nothing, and a logout must not
    need the database to tell it so. When the database cannot record the logout,
    the session stays valid and the page says so (503), offering to try again or
    to delete this browser's cookie anyway (``forget``), which it then says did not
    end the session."""
    session = signed_session(request)
    if session is None:
        return redirect_to_page(request, LOGIN_PATH)
    await check_csrf(request, session)
    response = redirect_to_page(request, LOGIN_PATH)
    try:
        await run_in_threadpool(end_session, request, session, response)
    except SessionUncheckable:
        expires = session_expires_at(request, session).strftime("%Y-%m-%d %H:%M UTC")
        if forget:
            forgotten = render(request, "logout_failed.html", None, forgotten=True, expires=expires)
            forgotten.delete_cookie(SESSION_COOKIE, path=cookie_path(request))
            return forgotten
        return render(
            request,
            "logout_failed.html",
            None,
            status_code=503,
            forgotten=False,
            expires=expires,
            csrf_token=session.csrf_token,
        )
    return response
