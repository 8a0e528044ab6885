"""Rules over a catalog kept in the real Postgres, with the Redis cache: PUT, filter, change."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from tests.app.rules.conftest import ADMIN, ADMIN_TOKEN

pytestmark = pytest.mark.integration

#: An attribute name no other test's items carry (the session database is shared).
COLOUR = "rules_pg_colour"


def test_filters_follow_the_catalog_in_postgres(
    make_client: Callable[..., TestClient],
    postgres_url: str,
    redis_url: str,
    redis_namespace: str,
) -> None:
    client = make_client(
        database_url=postgres_url,
        redis_url=redis_url,
        cache_namespace=redis_namespace,
        admin_token=ADMIN_TOKEN,
    )
    for item, colour in (("1", "red"), ("2", "red"), ("3", "blue"), ("4", "blue")):
        r = client.put(f"/v1/items/{item}", json={"attributes": {COLOUR: colour}}, headers=ADMIN)
        assert r.status_code in (200, 201), r.text
    params = {"k": 10, "exclude_seen": False, "filter": f"{COLOUR}:red"}
    body = client.get("/v1/users/u3/recommendations", params=params).json()
    assert sorted(it["item_id"] for it in body["items"]) == ["1", "2"]
    assert body["short_by"] == 8 and (body["model"], body["version"]) == ("mult-vae", "1")
    r = client.put("/v1/items/3", json={"attributes": {COLOUR: "red"}}, headers=ADMIN)
    assert r.status_code == 200, r.text
    body = client.get("/v1/users/u3/recommendations", params=params).json()
    assert sorted(it["item_id"] for it in body["items"]) == ["1", "2", "3"]
    r = client.put("/v1/items/4", json={"attributes": {COLOUR: 7}}, headers=ADMIN)
    assert r.status_code == 422 and "is a number here" in r.json()["message"]
