"""JSON request bodies read by the route itself, for the hot POST routes.

Why not a FastAPI body parameter: for each request FastAPI parses the
Content-Type header with ``email.message``, resolves the route's dependencies
with the body as one more field (``solve_dependencies``, ``request_body_to_args``,
a cache key per dependency) and validates through its field wrapper. On
``POST /v1/predictions`` that machinery was ~25% of the route's in-process CPU
(``cProfile`` of 32 coroutines calling the ASGI app, docs/performance.md), on
the event loop, which is what bounds the mixed traffic. ``parse_body`` does
what FastAPI does, in the same order and with the same errors (a missing
body, a JSON syntax error: 422 naming ``body``; a non-JSON content type: the raw
bytes fail validation, which ``app.core.errors`` answers as a 415), with one
``json.loads`` and one pydantic-core validation of a ``TypeAdapter`` built once
per type.

Two things differ on purpose, here and on the routes FastAPI reads the body of
(``StrictJsonRoute``). A body that cannot be read as JSON at all (not UTF-8, nested
past the parser's recursion limit, an integer of more digits than Python converts)
is a 400 saying which (``unreadable``), where FastAPI says "There was an error
parsing the body". And a JSON object that names a key twice
(``{"user_id": "a", "item_id": "1", "user_id": "b"}``) is a 422 naming the key:
``json.loads`` keeps the last value silently, so an interaction was logged for
whichever user came last: a guess, as with a query parameter given twice
(``app.api.query``).

``openapi_body`` documents the same type as the operation's request body, and
``document_request_bodies`` puts the models it names into ``/openapi.json``'s
components, so clients and schemathesis see exactly the schema FastAPI wrote.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.requests import ClientDisconnect

from app.core.body_limit import BODY_TOO_LARGE, too_large_message
from app.core.errors import ApiError
from app.core.media_types import is_json
from app.core.openapi_schema import REF_TEMPLATE, components_of, edit_openapi, move_definitions
from training.data.strict_json import DuplicateKey, loads, unreadable_reason

#: ``GENREC_MAX_BODY_BYTES``'s default (``app.core.config``), when no settings are loaded.
DEFAULT_MAX_BODY_BYTES = 64 * 2**20
#: The 400 of a client that went away mid-body (no one reads it; the log and metrics do).
DISCONNECTED = "body: the client disconnected before sending all of it"
#: Types documented by ``openapi_body``: their models go into the components.
_DOCUMENTED: list[Any] = []


def duplicate_key_error(exc: DuplicateKey) -> RequestValidationError:
    """Our 422 for a key given twice, at ``body``: the object's place is not known to the
    parser's hook."""
    error = {"type": "value_error", "loc": ("body",), "msg": f"Value error, {exc}", "input": None}
    return RequestValidationError([error])


def unreadable(exc: ValueError | RecursionError) -> ApiError:
    """Our 400 for a body ``json.loads`` cannot read at all (not a syntax error, which has
    a position: a 422), saying why. FastAPI's own answer, "There was an error parsing the
    body", named none of the three causes, so a client could not tell what to change."""
    return ApiError(400, "invalid_request", f"body: {unreadable_reason(exc)}")


@functools.cache
def _adapter(body_type: Any) -> TypeAdapter[Any]:
    return TypeAdapter(body_type)


async def parse_body(body_type: Any, request: Request) -> Any:
    """The request's JSON body validated as ``body_type`` (a model or an annotated union).

    Errors are FastAPI's own, so every body route answers alike: a
    ``RequestValidationError`` (our 422) with ``loc`` starting at ``body``, or
    ``unreadable``'s 400 when the bytes cannot be read as JSON at all.
    """
    raw = await _read(request)
    if not raw:
        missing = {"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}
        raise RequestValidationError([missing])
    data: Any = raw
    if is_json(request.headers.get("content-type")):
        try:
            data = loads(raw, utf8_only=True)
        except DuplicateKey as exc:
            raise duplicate_key_error(exc) from None
        except json.JSONDecodeError as exc:
            error = {
                "type": "json_invalid",
                "loc": ("body", exc.pos),
                "msg": "JSON decode error",
                "input": {},
                "ctx": {"error": exc.msg},
            }
            raise RequestValidationError([error]) from None
        except (ValueError, RecursionError) as exc:  # not UTF-8, too deep, a number too long
            raise unreadable(exc) from None
    try:
        return _adapter(body_type).validate_python(data, from_attributes=True)  # as FastAPI
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from None


Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class StrictJsonRoute(APIRoute):
    """A route whose FastAPI-read JSON body refuses a key given twice, as ``parse_body``
    does: the body is parsed by ``loads`` first and handed to FastAPI as the request's
    JSON, which FastAPI then validates as always. A syntax error is left to FastAPI
    (its 422 names the position); a body not readable at all is ``unreadable``'s 400. The route class
    of every router whose operations take a JSON body parameter (``AdminRoute``)."""

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler

        async def unique_keys_first(request: Request) -> Response:
            if is_json(request.headers.get("content-type")):
                raw = await request.body()
                if raw:
                    try:
                        request._json = loads(
                            raw, utf8_only=True
                        )  # what ``request.json()`` returns
                    except DuplicateKey as exc:
                        raise duplicate_key_error(exc) from None
                    except json.JSONDecodeError:
                        pass  # FastAPI parses it again: its 422 names the position
                    except (ValueError, RecursionError) as exc:
                        raise unreadable(exc) from None
            return await handler(request)

        return unique_keys_first


def _limit(request: Request) -> int:
    services = getattr(request.app.state, "services", None)
    settings = getattr(services, "settings", None)
    return int(getattr(settings, "max_body_bytes", DEFAULT_MAX_BODY_BYTES))


async def _read(request: Request) -> bytes:
    """The body, refused with a 413 once it is over ``GENREC_MAX_BODY_BYTES``: by its
    declared length before reading, or as it streams in (chunked), never whole in memory."""
    limit = _limit(request)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
    except ClientDisconnect:  # a 400 as FastAPI makes it, not an unhandled error and a 500
        raise ApiError(400, "invalid_request", DISCONNECTED) from None
    raw = b"".join(chunks)
    request._body = raw  # what ``request.body()`` would have kept, for anything after us
    return raw


def _too_large(limit: int) -> ApiError:
    return ApiError(413, BODY_TOO_LARGE, too_large_message(limit))


def openapi_body(body_type: Any) -> dict[str, Any]:
    """``openapi_extra`` that documents ``body_type`` as the required JSON request body."""
    if isinstance(body_type, type) and issubclass(body_type, BaseModel):
        schema: dict[str, Any] = {"$ref": REF_TEMPLATE.format(model=body_type.__name__)}
    else:
        schema = _adapter(body_type).json_schema(ref_template=REF_TEMPLATE)
        schema.pop("$defs", None)  # into the components, by document_request_bodies
    _DOCUMENTED.append(body_type)
    return {"requestBody": {"content": {"application/json": {"schema": schema}}, "required": True}}


def document_request_bodies(app: FastAPI) -> None:
    """Add the models of every ``openapi_body`` type to ``/openapi.json``'s components
    (FastAPI adds only the models its own parameters and responses name)."""

    def add_bodies(schema: dict[str, Any]) -> None:
        components = components_of(schema)
        for body_type in _DOCUMENTED:
            body = _adapter(body_type).json_schema(ref_template=REF_TEMPLATE)
            body = move_definitions(components, body)
            if isinstance(body_type, type) and issubclass(body_type, BaseModel):
                components.setdefault(body_type.__name__, body)
        schema["components"]["schemas"] = dict(sorted(components.items()))

    edit_openapi(app, add_bodies)
