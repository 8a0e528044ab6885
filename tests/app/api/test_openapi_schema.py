"""``/openapi.json`` is a valid OpenAPI document: it passes the OpenAPI meta-schema and
every operation has its own ``operationId`` (which the meta-schema cannot check).

Clients generated from the schema name a method per operationId; GET and HEAD of
``/healthz`` and ``/readyz`` shared theirs (one route for both methods), so a
generator refused the schema or silently dropped one of them.
"""

from __future__ import annotations

import warnings
from collections import Counter
from typing import Any

import pytest
import schemathesis

from app.core.head import HEAD_NOTE
from app.main import create_app
from tests.app.conftest import embedded_settings


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        document = create_app(embedded_settings()).openapi()
    duplicates = [str(w.message) for w in caught if "Duplicate Operation ID" in str(w.message)]
    assert not duplicates, duplicates  # FastAPI's own warning
    return document


def test_the_schema_passes_the_openapi_meta_schema(schema: dict[str, Any]) -> None:
    schemathesis.openapi.from_dict(schema).validate()


def test_every_operation_has_its_own_operation_id(schema: dict[str, Any]) -> None:
    ids = Counter(
        operation["operationId"]
        for operations in schema["paths"].values()
        for operation in operations.values()
    )
    assert not [name for name, count in ids.items() if count > 1], ids


def test_head_is_described_once_not_per_operation(schema: dict[str, Any]) -> None:
    """Every GET answers HEAD (``app.core.head``); listing each as an operation of its own
    would double the schema for nothing a client generator needs."""
    assert not [path for path, operations in schema["paths"].items() if "head" in operations]
    assert HEAD_NOTE in schema["info"]["description"]
