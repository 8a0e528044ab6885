"""Edits to the ``/openapi.json`` FastAPI builds, for what it cannot see by itself.

Two modules document schemas FastAPI does not generate: the error handlers'
422 body (``app.core.errors``) and the request bodies the hot routes read
themselves (``app.api.body``). Both hook the document the same way, here:
after FastAPI has built it, once, and with the models' nested definitions
moved into the components where ``REF_TEMPLATE`` references point.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

#: Where model schemas live in ``/openapi.json`` (pydantic's ``ref_template``).
REF_TEMPLATE = "#/components/schemas/{model}"


def edit_openapi(app: FastAPI, edit: Callable[[dict[str, Any]], None]) -> None:
    """Have ``edit`` change the document after FastAPI (and earlier edits) built it; the
    result is cached like FastAPI's own."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        edit(schema)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def components_of(schema: dict[str, Any]) -> dict[str, Any]:
    """The document's ``components.schemas`` (created when absent)."""
    components: dict[str, Any] = schema.setdefault("components", {}).setdefault("schemas", {})
    return components


def move_definitions(components: dict[str, Any], model_schema: dict[str, Any]) -> dict[str, Any]:
    """``model_schema`` without its ``$defs``, which join ``components`` (existing ones win)."""
    for name, definition in model_schema.pop("$defs", {}).items():
        components.setdefault(name, definition)
    return model_schema
