"""Login form, login, logout; ``/dashboard`` itself sends the browser to the overview."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.api.admin_auth import client_address
from app.api.deps import services_of
from app.dashboard.auth import (
    HOME_PATH,
    CsrfDep,
    SessionDep,
    admin_token,
    end_session,
    login_nonce_matches,
    new_login_nonce,
    read_session,
    remember_login_nonce,
    safe_next,
    start_session,
    token_matches,
)
from app.dashboard.templating import render

router = APIRouter()


@router.get("/dashboard")
def index(session: SessionDep) -> Response:
    return RedirectResponse("/dashboard/overview", status_code=303)


def _login_form(
    request: Request, error: str | None, status_code: int, next_path: str | None
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
    )
    remember_login_nonce(request, response, nonce)
    return response


@router.get("/dashboard/login", response_class=HTMLResponse)
def login_form(request: Request, next: str | None = None) -> Response:
    """The form; ``next``: the dashboard page to come back to (``auth.safe_next``)."""
    if read_session(request) is not None:
        return RedirectResponse(safe_next(next) or HOME_PATH, status_code=303)
    return _login_form(request, None, 200, next)


@router.post("/dashboard/login", response_class=HTMLResponse)
def login(
    request: Request,
    token: Annotated[str, Form()] = "",
    nonce: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "",
) -> Response:
    """Exchange the admin token for a session cookie (wrong tokens count towards the
    address's lockout, as on the admin API), then go to ``next`` or the overview."""
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
    response = RedirectResponse(safe_next(next) or HOME_PATH, status_code=303)
    start_session(request, response)
    return response


@router.post("/dashboard/logout")
def logout(request: Request, session: CsrfDep) -> Response:
    """End the session on every replica (``end_session``), then back to the login form."""
    response = RedirectResponse("/dashboard/login", status_code=303)
    end_session(request, session, response)
    return response
