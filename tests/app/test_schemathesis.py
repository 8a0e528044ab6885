"""Property-based API fuzzing: schemathesis drives every operation in ``/openapi.json``.

The app runs in process (ASGI, embedded settings: SQLite + in-process cache)
over the small real artifacts of ``tests/app/conftest.py``. Whatever
schemathesis generates, valid or not, the service must answer without a 500
and, when it answers 2xx/4xx, with a body matching its documented schema.
Bounded: a few dozen examples per operation, derandomized, so the run is
repeatable and takes seconds.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.schemas import BaseSchema
from schemathesis.specs.openapi.checks import response_schema_conformance

from app.core.db import upgrade_database
from app.main import create_app
from tests.app.conftest import embedded_settings


@pytest.fixture(scope="module")
def api_schema(
    trained_store_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BaseSchema]:
    root = tmp_path_factory.mktemp("fuzz")
    store = root / "store"
    shutil.copytree(trained_store_dir, store)
    url = f"sqlite:///{root}/genrec.db"
    upgrade_database(url)
    app = create_app(
        embedded_settings(store_dir=store, database_url=url, auto_migrate=False, access_log=False)
    )
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    asgi.shutdown_lifespans()  # the app's lifespan: batchers, reload thread, engine


def _cases() -> list[tuple[str, str, GenerationMode]]:
    """(method, path, mode) of every documented operation; negative only where it has input.

    Built from the app's schema, which needs no running app (no lifespan).
    """
    paths = create_app(embedded_settings()).openapi()["paths"]
    cases = []
    for path, operations in paths.items():
        for method, spec in operations.items():
            cases.append((method.upper(), path, GenerationMode.POSITIVE))
            if _can_be_invalid(spec):
                cases.append((method.upper(), path, GenerationMode.NEGATIVE))
    return cases


def _can_be_invalid(spec: dict[str, Any]) -> bool:
    """Whether negative mode can generate anything: a body, or a parameter that is not a
    plain string (every string is a valid path id, so e.g. ``GET /x/{id}`` has no invalid
    input and hypothesis would report the search as unsatisfiable)."""
    if spec.get("requestBody"):
        return True
    return any(
        p.get("schema", {}) != {"type": "string", "title": p["schema"].get("title")}
        for p in spec.get("parameters", [])
    )


@pytest.mark.parametrize(("method", "path", "mode"), _cases())
def test_no_request_makes_a_server_error(
    api_schema: BaseSchema, method: str, path: str, mode: GenerationMode
) -> None:
    operation = api_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=25,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case) -> None:
        response = case.call()
        case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])

    run()
