"""One error type for the API and the handlers that turn every failure into JSON.

Business code raises ``ApiError(status, code, message)``; nothing else maps
exceptions to HTTP. Validation errors become a 422 whose message names the
field; anything unexpected becomes a 500 ``{"error": "internal",
"request_id": ...}`` with the traceback only in the server log.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from app.core.allowed_hosts import HostNotAllowed
from app.core.body_encoding import UNSUPPORTED_MEDIA_TYPE
from app.core.body_limit import BODY_TOO_LARGE
from app.core.body_timeout import BODY_TIMEOUT
from app.core.openapi_schema import REF_TEMPLATE, components_of, edit_openapi, move_definitions
from app.core.text import clip

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
#: What a lone UTF-16 surrogate in a string is called (``app.schemas_fields``, and pydantic's
#: ``string_unicode`` error, which says "unable to parse raw data as a unicode string").
LONE_SURROGATE = "must not contain a lone surrogate (U+D800..U+DFFF): it is not valid Unicode"
#: Most validation problems one 422 lists; the rest are counted (a 1,000-row batch with
#: the same mistake in every row once answered ~200 KB repeating it 1,000 times).
MAX_PROBLEMS = 20
#: Most row ranges a 422's ``details.rows`` spells out.
MAX_ROW_RANGES = 20
#: Longest message one problem of a 422 has: a validator's message may quote the value it
#: refused (``got '...'``), and this bounds every such quote, present or future.
MAX_PROBLEM_MESSAGE = 300
#: Longest message of any other 4xx: the messages of the model store and the training
#: package (which know nothing of answers) name what they refused (a model name, a
#: setting) whole, so a 100 KB unknown ``params`` key was a 100 KB 422.
MAX_ERROR_MESSAGE = 1000


class ApiError(Exception):
    """An answer the API gives on purpose: HTTP status, stable code, human message."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        self.headers = headers


def request_id_of(request: Request) -> str:
    """The id the request middleware assigned ("-" if it never ran)."""
    return str(getattr(request.state, "request_id", "-"))


def _body(code: str, message: str, request: Request, **extra: Any) -> dict[str, Any]:
    return {"error": code, "message": message, "request_id": request_id_of(request), **extra}


def describe_validation_errors(errors: Sequence[Any]) -> list[dict[str, str]]:
    """Pydantic errors as ``{field, message}`` with dotted paths (``interactions[0].rating``).

    Each part of the path and each message is ``clip``-ped: the path of an unknown key
    is the key the client sent, and a 1 MB key was echoed whole twice (``field`` and
    ``message``), a 2 MB answer to a 1 MB mistake.
    """
    out = []
    for error in errors:
        loc = [p for p in error.get("loc", ()) if p not in ("body", "query", "path", "header")]
        # Tagged unions add the tag name to the path; it means nothing to a client.
        loc = [p for p in loc if p not in ("single", "batch")]
        field = ""
        for part in loc:
            part = part if isinstance(part, int) else clip(str(part))
            field += f"[{part}]" if isinstance(part, int) else (f".{part}" if field else part)
        message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
        if error.get("type") == "string_pattern_mismatch" and _blank_id(error):
            message = only_white_space(error["input"])
        if error.get("type") == "string_unicode":
            message = LONE_SURROGATE
        if error.get("type") in ("too_long", "too_short") and isinstance(error.get("input"), str):
            message = _string_length(error)
        if error.get("type") == "json_invalid":
            # The position is the path's [N]; the parser's reason says what is wrong there.
            reason = (error.get("ctx") or {}).get("error")
            where = f" at character {loc[0]}" if loc and isinstance(loc[0], int) else ""
            message = f"not valid JSON{where}" + (f": {reason}" if reason else "")
            field = "body"
        out.append({"field": field or "body", "message": clip(message, MAX_PROBLEM_MESSAGE)})
    return out


def only_white_space(value: str) -> str:
    """Why an id of white space only is refused, worded once for the body's ``Id`` (its
    pattern, here) and for ``schemas_fields.id_problem`` (URLs, PUT, the CLI)."""
    count = f"{len(value)} character{'' if len(value) == 1 else 's'}"
    return f"only white space ({count}): an id needs at least one other character"


def _blank_id(error: Any) -> bool:
    """The failure of ``Id``'s pattern ``\\S``, said as "String should match pattern '\\S'"."""
    pattern = (error.get("ctx") or {}).get("pattern")
    return pattern == r"\S" and isinstance(error.get("input"), str)


def _string_length(error: Any) -> str:
    """A length limit on text, in characters. A length constraint on a field whose type
    carries a validator (``Text``: the storable check) is checked by pydantic after
    that validator, as a generic length, and said as "Value should have at most 1000
    items after validation": a title is not a list of items."""
    ctx = error.get("ctx") or {}
    most = error.get("type") == "too_long"
    limit = ctx.get("max_length" if most else "min_length")
    plural = "" if limit == 1 else "s"
    return f"String should have at {'most' if most else 'least'} {limit} character{plural}"


def _rows_of(errors: Sequence[Any]) -> list[int]:
    """The list indices the errors point at (``interactions[3]`` -> 3), sorted, distinct."""
    rows = set()
    for error in errors:
        index = next((p for p in error.get("loc", ()) if isinstance(p, int)), None)
        if index is not None:
            rows.add(index)
    return sorted(rows)


def summarize_rows(rows: Sequence[int], limit: int = MAX_ROW_RANGES) -> str:
    """``[0, 1, 2, 5, 7, 8]`` -> ``"0-2, 5, 7-8"``; past ``limit`` ranges, ``", ..."``."""
    ranges: list[list[int]] = []
    for row in rows:
        if ranges and row == ranges[-1][1] + 1:
            ranges[-1][1] = row
        else:
            ranges.append([row, row])
    parts = [f"{a}-{b}" if b > a else str(a) for a, b in ranges[:limit]]
    return ", ".join(parts) + (", ..." if len(ranges) > limit else "")


def validation_body(errors: Sequence[Any]) -> dict[str, Any]:
    """``message``, ``problems`` and (when there are many) ``details`` of a 422.

    At most ``MAX_PROBLEMS`` problems are listed, in ``message`` and ``problems``
    alike; ``details`` then says how many there are in all and which rows of the
    batch they are in, so the answer stays small however large the request.
    """
    problems = describe_validation_errors(errors[:MAX_PROBLEMS])
    message = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
    body: dict[str, Any] = {"message": message, "problems": problems}
    if len(errors) > MAX_PROBLEMS:
        rows = _rows_of(errors)
        details: dict[str, Any] = {"problems_total": len(errors), "problems_shown": MAX_PROBLEMS}
        where = ""
        if rows:
            details |= {"rows_total": len(rows), "rows": summarize_rows(rows)}
            where = f" in {len(rows)} rows ({details['rows']})"
        body["message"] = f"{len(errors)} problems{where}; the first {MAX_PROBLEMS}: {message}"
        body["details"] = details
    return body


@functools.lru_cache(maxsize=8)
def path_hider(root: str | os.PathLike[str]) -> Callable[[str], str]:
    """``hide(message)``: ``message`` with the server's place of ``root`` taken out.

    The model store's errors name the file involved (``/srv/store/ease/versions/3/
    manifest.json is missing``), for an operator at the command line; an API answer
    names it relative to the store (``ease/versions/3/manifest.json is missing``) and
    the root itself as "the model store", so that no answer tells a client (or a
    leaked admin token) the server's filesystem layout. The root is matched absolute
    and with links resolved, whole path components only; a relative root (``./store``)
    is left as the store names it, which tells nothing of the disk (and replacing the
    bare word would garble a message that says "store").
    """
    forms = {os.path.abspath(root), os.path.realpath(root)}
    if os.path.isabs(root):  # as the store names its files: ``Path(root)`` keeps a ".."
        forms.add(str(Path(root)))
    forms = {f.rstrip("/") for f in forms} - {""}
    if not forms:
        return lambda message: message
    alternation = "|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True))
    # The root, then a key under it (kept, relative) or the end of the path: a "." after
    # it ends a sentence unless a name goes on ("/srv/store.bak" is another folder).
    place = re.compile(rf"(?<![\w./-])(?:{alternation})(?:/(?P<key>)(?=[^\s/])|/?(?![\w/-]|\.\w))")

    def hide(message: str) -> str:
        return place.sub(lambda m: "" if m.group("key") is not None else "the model store", message)

    return hide


def _hidden(value: Any, hide: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return hide(value)
    if isinstance(value, dict):
        return {k: _hidden(v, hide) for k, v in value.items()}
    if isinstance(value, list):
        return [_hidden(v, hide) for v in value]
    return value


def _api_error_handler(hide: Callable[[str], str]) -> Any:
    async def _api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        extra = {"details": _hidden(exc.details, hide)} if exc.details else {}
        return JSONResponse(
            _body(exc.code, clip(hide(exc.message), MAX_ERROR_MESSAGE), request, **extra),
            status_code=exc.status,
            headers=exc.headers,
        )

    return _api_error


def _unread_body(errors: Sequence[Any]) -> bool:
    """Whether the body was refused as a whole without being read as JSON.

    FastAPI (and ``app.api.body``) parse a body as JSON only when its Content-Type
    says JSON; otherwise the raw bytes are validated and fail as "Input should be a
    valid dictionary", which sends a client that did send JSON, labelled
    ``text/plain`` or not at all, looking for a fault in its JSON. The location may go
    on past ``body`` (a tagged union names its member: ``body.single`` for
    ``POST /v1/interactions``); raw bytes as the input is the sign, since a body read as
    JSON never holds bytes.
    """
    return any(
        tuple(e.get("loc", ()))[:1] == ("body",) and isinstance(e.get("input"), bytes | bytearray)
        for e in errors
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    if _unread_body(exc.errors()):
        sent = request.headers.get("content-type")
        message = (
            f"body: Content-Type is '{clip(sent)}'"
            if sent
            else "body: the request has no Content-Type"
        ) + "; send the body as JSON with Content-Type: application/json"
        return JSONResponse(_body(UNSUPPORTED_MEDIA_TYPE, message, request), status_code=415)
    body = validation_body(exc.errors())
    message = body.pop("message")
    return JSONResponse(_body("invalid_request", message, request, **body), status_code=422)


#: The stable code of each status Starlette or a middleware raises as an ``HTTPException``
#: (413: ``app.core.body_limit``; 408: ``app.core.body_timeout``; 415:
#: ``app.core.body_encoding``, the code of the 415 ``_validation_error`` answers too).
_HTTP_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    408: BODY_TIMEOUT,
    413: BODY_TOO_LARGE,
    415: UNSUPPORTED_MEDIA_TYPE,
}


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc, HostNotAllowed):  # a 400 of its own (Starlette's other 400s: forms)
        code = exc.code
    else:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
    headers = getattr(exc, "headers", None)
    if exc.status_code == 405:
        headers = {**(headers or {}), "Allow": ", ".join(allowed_methods(request))}
    return JSONResponse(
        _body(code, clip(str(exc.detail), MAX_ERROR_MESSAGE), request),
        status_code=exc.status_code,
        headers=headers,
    )


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at the request's path, sorted.

    Why not the exception's own ``Allow``: Starlette's router answers 405 from the
    first route whose path matched, so a path served by two routes (``GET`` and
    ``POST /admin/experiments``) said ``Allow: POST`` alone, and RFC 9110 (15.5.6)
    asks a 405 to list every method the resource supports. Each method is asked of
    the router through ``BaseRoute.matches``, the one interface every route kind
    (FastAPI's included routers too) implements.
    """
    allowed = set()
    for method in _METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes):
            allowed.add(method)
    if "GET" in allowed:
        allowed.add("HEAD")  # answered for every GET (app.core.head), routed as one
    return sorted(allowed)


#: The methods a 405's ``Allow`` may list (RFC 9110's, less CONNECT and TRACE).
_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    request_id = request_id_of(request)
    log.error(
        "unhandled error in %s %s (request %s)",
        request.method,
        request.url.path,
        request_id,
        exc_info=exc,
    )
    # This response bypasses the middleware stack, so set the headers here: the request
    # id, and no-store (no cache keeps a failure; ``app.api.admin_cache`` cannot add it
    # to an /admin answer it never sees).
    return JSONResponse(
        {"error": "internal", "request_id": request_id},
        status_code=500,
        headers={REQUEST_ID_HEADER: request_id, "Cache-Control": "no-store"},
    )


def install_error_handlers(app: FastAPI, hide: Callable[[str], str] | None = None) -> None:
    """Register every handler on ``app``; ``hide`` (``path_hider``) edits every ``ApiError``'s
    message and details before they are sent."""
    app.add_exception_handler(ApiError, _api_error_handler(hide or (lambda message: message)))
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)


def document_error_bodies(app: FastAPI, error_model: type[Any]) -> None:
    """Make ``/openapi.json`` describe the 422 body these handlers send.

    FastAPI documents its own ``{"detail": [...]}`` validation body; ours is
    ``error_model`` (``{"error", "message", "request_id", "problems"}``), so
    clients and schema-driven tests (schemathesis) see what they will get.
    """

    def replace_validation_error(schema: dict[str, Any]) -> None:
        components = components_of(schema)
        if "HTTPValidationError" in components:
            body = error_model.model_json_schema(ref_template=REF_TEMPLATE)
            components["HTTPValidationError"] = move_definitions(components, body)

    edit_openapi(app, replace_validation_error)
