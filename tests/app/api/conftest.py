"""A client of the app over the real PostgreSQL and Redis, with the admin API on."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

#: The admin token of ``pg_client``; ``ADMIN`` is its header.
ADMIN_TOKEN = "edge-admin-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def pg_client(
    make_client: Callable[..., TestClient], postgres_url: str, redis_url: str, redis_namespace: str
) -> TestClient:
    """Postgres refuses what SQLite stores (NUL in text, integers past 64 bits): edge cases
    of client input must be tried here, not only on the embedded app."""
    return make_client(
        database_url=postgres_url,
        redis_url=redis_url,
        cache_namespace=redis_namespace,
        admin_token=ADMIN_TOKEN,
    )
