"""Query strings parsed by one pydantic model, for the hot GET routes.

Why not FastAPI's ``Query()`` parameters: FastAPI re-inspects every declared
parameter's annotation on every request (``field_annotation_is_sequence`` and
friends); for ``GET /v1/users/{id}/recommendations`` and its five optional
parameters that was the largest single cost in a profile of the route
(``python -m cProfile -s tottime benchmarks/serve_inprocess.py --store ...``
at the commit before this module: ``request_params_to_args`` and its helpers).
Together with the batch-path changes the route's in-process CPU per request
fell from 485 to 230 us (docs/performance.md). One
``model_validate`` of the whole query does the same validation in
pydantic-core. ``openapi_parameters`` documents the same model, so
``/openapi.json`` (and schemathesis) still see every parameter.
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Iterable
from typing import Any, TypeVar

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.datastructures import QueryParams

M = TypeVar("M", bound=BaseModel)


def _is_list(annotation: Any) -> bool:
    """``list[str]`` or ``list[str] | None``: a parameter that may repeat (``?x=a&x=b``)."""
    if typing.get_origin(annotation) is list:
        return True
    return any(typing.get_origin(arg) is list for arg in typing.get_args(annotation))


@functools.cache
def _list_fields(model: type[BaseModel]) -> frozenset[str]:
    """The fields that may repeat, worked out once per model."""
    return frozenset(n for n, f in model.model_fields.items() if _is_list(f.annotation))


def parse_query(model: type[M], params: QueryParams) -> M:
    """``params`` validated as ``model``; a ``RequestValidationError`` (our 422) naming the
    parameter otherwise. Parameters the model does not declare are ignored, as FastAPI does
    (a link's ``utm_source`` must not fail a page).

    A single-valued parameter given twice (``?k=5&k=500``) is refused: FastAPI keeps the
    last one silently, and which of two values a client meant is a guess either way."""
    lists = _list_fields(model)
    data: dict[str, Any] = {}
    errors: list[dict[str, Any]] = []
    for name in model.model_fields:
        if name not in params:
            continue
        values = params.getlist(name)
        if name in lists:
            data[name] = values
        elif len(values) > 1:
            errors.append(_given_more_than_once(name, values))
        else:
            data[name] = values[0]
    try:
        parsed = model.model_validate(data)
    except ValidationError as exc:
        errors += [{**e, "loc": ("query", *e["loc"])} for e in exc.errors(include_url=False)]
    if errors:
        raise RequestValidationError(errors)
    return parsed


def refuse_repeated(params: QueryParams, names: Iterable[str]) -> None:
    """Our 422 for each of ``names`` given more than once, on a route whose query string
    FastAPI parses itself (``GET /admin/jobs``): FastAPI keeps the last value silently, so
    ``?status=failed&status=queued`` listed the queued jobs as if the first were not sent."""
    errors = [
        _given_more_than_once(name, params.getlist(name))
        for name in names
        if len(params.getlist(name)) > 1
    ]
    if errors:
        raise RequestValidationError(errors)


def _given_more_than_once(name: str, values: list[str]) -> dict[str, Any]:
    """The error of a repeated single-valued parameter, in pydantic's error shape."""
    return {
        "type": "value_error",
        "loc": ("query", name),
        "msg": f"Value error, takes one value, given {len(values)} times",
        "input": values,
    }


def openapi_parameters(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` that documents ``model``'s fields as optional query parameters."""
    schema = model.model_json_schema()
    parameters = []
    for name, prop in schema.get("properties", {}).items():
        prop = dict(prop)
        description = prop.pop("description", None)
        prop.pop("title", None)
        entry: dict[str, Any] = {"name": name, "in": "query", "required": False, "schema": prop}
        if description:
            entry["description"] = description
        parameters.append(entry)
    return {"parameters": parameters}
