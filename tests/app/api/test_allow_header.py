"""A 405 lists exactly the methods ``/openapi.json`` documents for the path (RFC 9110 15.5.6).

Starlette answers a 405 from the first route whose path matched, so a path served
by two routes listed one route's methods; ``app.core.errors.allowed_methods`` asks the
router for each method instead. Routing alone decides a 405, so the app runs without
its lifespan (no models, no database).
"""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from app.main import create_app
from tests.app.conftest import embedded_settings


def test_every_documented_path_answers_405_with_its_documented_methods() -> None:
    app = create_app(embedded_settings())
    client = TestClient(app)
    paths = app.openapi()["paths"]
    assert len(paths) > 10
    for template, operations in paths.items():
        url = re.sub(r"\{[^}]+\}", "x", template)
        r = client.request("OPTIONS", url)  # no route serves OPTIONS
        assert r.status_code == 405, (url, r.status_code)
        assert r.json()["error"] == "method_not_allowed"
        assert r.headers["allow"] == ", ".join(sorted(m.upper() for m in operations)), url
