"""Readiness while Postgres is unreachable: 200, ``degraded`` (issue #16, item 5).

The decision (docs/deployment.md#readiness): a database outage does not make
a replica unready, because reads still answer from the artifact and the cache
and failing readiness would pull every replica out of the load balancer at
once. The app is pointed at a Postgres URL on a closed port (the shared
Postgres is never stopped); the reachable case uses the real one.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def _closed_port() -> int:
    with socket.socket() as s:  # bound and closed again: nothing listens there
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_ready_and_not_degraded_with_the_real_postgres(
    make_client: Callable[..., TestClient], postgres_url: str
) -> None:
    body = make_client(database_url=postgres_url).get("/readyz")
    assert body.status_code == 200
    assert body.json()["degraded"] is False and body.json()["database"] == {"ok": True}


def test_unreachable_postgres_is_degraded_not_unready(
    make_client: Callable[..., TestClient], postgres_url: str
) -> None:
    down = make_url(postgres_url).set(host="127.0.0.1", port=_closed_port())
    client = make_client(
        database_url=down.render_as_string(hide_password=False),
        db_connect_timeout_s=1,
        admin_token="t",
    )
    r = client.get("/readyz", headers={"Authorization": "Bearer t"})  # with the details
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ready"] is True and body["degraded"] is True and body["reason"] is None
    assert body["database"]["ok"] is False and "OperationalError" in body["database"]["error"]
    assert body["models"]["mult-vae"]["loaded"] is True
    # What "degraded" means for requests: reads answer (flagged), writes answer 503.
    read = client.get("/v1/users/u1/recommendations", params={"k": 3})
    assert read.status_code == 200 and read.json()["degraded"] is True
    write = client.post("/v1/interactions", json={"user_id": "u1", "item_id": "1"})
    assert write.status_code == 503 and write.json()["error"] == "database_unavailable"


def test_readiness_is_documented_once_and_consistently() -> None:
    readme = (REPO / "README.md").read_text()
    deployment = (REPO / "docs" / "deployment.md").read_text()
    assert "### Readiness" in deployment  # the full statement lives here ...
    assert "docs/deployment.md#readiness" in readme  # ... and the README links to it
    for text in (readme, deployment):
        flat = re.sub(r"\s+", " ", text)
        assert "only when the database answers" not in flat
        assert "200 when the database answers" not in flat
