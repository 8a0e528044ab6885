"""Property-based API fuzzing: schemathesis drives every operation in ``/openapi.json``.

The app runs in process (ASGI) over the small real artifacts of
``tests/app/conftest.py``, twice: embedded (SQLite + in-process cache) and
against the real PostgreSQL and Redis. SQLite stores what Postgres refuses
(a NUL in text, integers beyond 64 bits), so only the second run catches
client input that reaches the database as an "outage". The admin token is
sent, so the admin routes are fuzzed past the auth check. Whatever
schemathesis generates, valid or not, the service must answer without a 500,
with a status the operation documents, and with a body matching its
documented schema. Bounded: 25 examples per operation and mode,
derandomized, so the run is repeatable and takes well under a minute.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.schemas import BaseSchema
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from app.core.db import upgrade_database
from app.main import create_app
from tests.app.conftest import embedded_settings
from tests.conftest import REDIS_TEST_URL, scratch_database
from tests.conftest import _service_missing as service_missing

ADMIN_TOKEN = "fuzz-admin-token"


@pytest.fixture(scope="module")
def own_postgres(request: pytest.FixtureRequest) -> Iterator[str]:
    """A database of its own in the test Postgres: the fuzzer queues retrain jobs, which
    must not reach other tests' workers."""
    with scratch_database(request.getfixturevalue("postgres_url"), "genrec_fuzz") as url:
        yield url


@pytest.fixture(scope="module")
def own_redis_namespace() -> Iterator[tuple[str, str]]:
    """(url, key prefix) in the test Redis for the whole module; its keys deleted after."""
    client = redis.Redis.from_url(REDIS_TEST_URL)
    try:
        client.ping()
    except Exception as exc:
        client.close()
        service_missing("Redis", exc)
    namespace = f"genrec-test-fuzz-{uuid.uuid4().hex[:8]}"
    try:
        yield REDIS_TEST_URL, namespace
    finally:
        for key in client.scan_iter(match=f"{namespace}:*"):
            client.delete(key)
        client.close()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def api_schema(
    request: pytest.FixtureRequest,
    trained_store_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[BaseSchema]:
    root = tmp_path_factory.mktemp("fuzz")
    store = root / "store"
    shutil.copytree(trained_store_dir, store)
    services: dict[str, Any] = {}
    if request.param == "postgres":
        services["database_url"] = request.getfixturevalue("own_postgres")
        services["redis_url"], services["cache_namespace"] = request.getfixturevalue(
            "own_redis_namespace"
        )
    else:
        services["database_url"] = f"sqlite:///{root}/genrec.db"
    upgrade_database(services["database_url"])
    app = create_app(
        embedded_settings(
            store_dir=store,
            auto_migrate=False,
            access_log=False,
            admin_token=ADMIN_TOKEN,
            **services,
        )
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
        {k: v for k, v in p.get("schema", {}).items() if k not in ("title", "description")}
        != {"type": "string"}
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
        response = case.call(headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        case.validate_response(
            response,
            checks=[not_a_server_error, status_code_conformance, response_schema_conformance],
        )

    run()
