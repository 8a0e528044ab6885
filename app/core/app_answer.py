"""The app's own answer to an ``HTTPException`` raised outside its exception handlers.

A middleware that refuses a request before the app runs (a body over the limit, a
Host that is not allowed) sits outside Starlette's ``ExceptionMiddleware``, so
raising would reach the server as an error. It asks the app's handler instead: the
API's paths get the API's JSON, the dashboard's its error page or fragment
(``app.dashboard``), one refusal written in one place.
"""

from __future__ import annotations

import inspect

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Scope


async def app_answer(scope: Scope, exc: HTTPException, code: str) -> Response:
    """The handler's answer to ``exc`` for the request of ``scope``; the bare JSON error
    (``code``, the exception's detail, the request id) without an app or a handler (a
    middleware test)."""
    app = scope.get("app")
    handlers = getattr(app, "exception_handlers", {})
    handler = handlers.get(HTTPException)
    if handler is None:
        body = {
            "error": code,
            "message": str(exc.detail),
            "request_id": scope.get("state", {}).get("request_id"),
        }
        return JSONResponse(body, exc.status_code, headers=exc.headers)
    answer = handler(Request(scope), exc)
    response: Response = await answer if inspect.isawaitable(answer) else answer
    return response
