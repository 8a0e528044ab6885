"""The error answers each route documents in ``/openapi.json`` (``responses=errors(...)``).

Why: clients and schema-driven tests (schemathesis' ``status_code_conformance``)
read the OpenAPI document to learn which statuses an operation answers; a
route that can answer 404 or 409 must say so, with the one error body every
failure has (``app.schemas.ErrorResponse``, written by ``app.core.errors``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from starlette.responses import Response

from app.schemas import ErrorResponse

#: What each status means on this API (the codes in the body say which case).
MEANINGS: dict[int, str] = {
    400: "the body cannot be read as JSON (e.g. it is not UTF-8)",
    401: "missing or wrong admin token (`Authorization: Bearer <token>`; `unauthorized`)",
    403: "the admin API is disabled: no GENREC_ADMIN_TOKEN on the server (`admin_disabled`)",
    404: "not found: unknown model, user, item, job or version (the `error` code says which)",
    408: "the body stopped arriving for GENREC_BODY_TIMEOUT_S (`body_timeout`); the "
    "connection is closed",
    409: "refused in its current state: `job_conflict`, `duplicate_job` (an identical job is "
    "queued or running; `details.job_id` names it), `version_refused`, `nothing_to_roll_back`",
    413: "too many entries in one request (`batch_too_large`), or a JSON body over "
    "GENREC_MAX_BODY_BYTES (`body_too_large`)",
    415: "the body is not labelled JSON (send it with `Content-Type: application/json`), "
    "is compressed (a `Content-Encoding` other than identity), or names a charset other "
    "than UTF-8 (`unsupported_media_type`)",
    422: "invalid request: the message names the field (`invalid_request`, `invalid_id`, "
    "`unknown_event_type`, ...)",
    429: "too many wrong admin tokens from this address: locked out for a while "
    "(`too_many_failures`; `Retry-After` says how long)",
    503: "a dependency is unavailable (`database_unavailable`, `model_unavailable`, "
    "`shutting_down`); retry later",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route that may answer ``statuses``, each with ``ErrorResponse``."""
    return {s: {"model": ErrorResponse, "description": MEANINGS[s]} for s in statuses}


#: Statuses of every route behind the admin token (429: ``app.core.auth_throttle``).
ADMIN = (401, 403, 429)
#: Statuses of every route that serves a model (unknown model, bad input, no model/DB).
SERVING = (404, 422, 503)
#: Statuses of every route that reads a JSON body, besides its own (413: the body over
#: GENREC_MAX_BODY_BYTES, ``app.core.body_limit``, applies to every one of them).
BODY = (400, 408, 413, 415, 422)


def json_bytes(answer: BaseModel, status_code: int = 200, exclude_none: bool = True) -> Response:
    """``answer`` serialised once by pydantic-core and sent as bytes.

    Why: a route that returns a model makes FastAPI validate it again against
    ``response_model``, turn it into plain Python (``jsonable_encoder``) and
    ``json.dumps`` that; on the serving routes that was a large share of the
    event loop's time (docs/performance.md). The routes keep
    ``response_model`` for ``/openapi.json``; ``exclude_none`` matches their
    ``response_model_exclude_none``.
    """
    body = answer.__pydantic_serializer__.to_json(answer, exclude_none=exclude_none)
    return Response(body, status_code=status_code, media_type="application/json")
