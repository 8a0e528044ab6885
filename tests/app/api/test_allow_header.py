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

    # An id may hold a "/" (user and item ids are opaque): a documented path whose id
    # parameter can take the rest of the URL serves it too ("/v1/items/x/similar" is also
    # the item "x/similar"), so the expected methods are those of every matching template.
    def pattern(template: str) -> re.Pattern[str]:
        parts = re.split(r"(\{[^}]+\})", template)
        return re.compile(
            "^"
            + "".join(
                (".+" if p in ("{user_id}", "{item_id}") else "[^/]+")
                if p.startswith("{")
                else re.escape(p)
                for p in parts
            )
            + "$"
        )

    matchers = {template: pattern(template) for template in paths}
    for template in paths:
        url = re.sub(r"\{[^}]+\}", "x", template)
        documented = {m.upper() for t, ops in paths.items() if matchers[t].match(url) for m in ops}
        if "GET" in documented:
            documented.add("HEAD")  # every GET answers HEAD (app.core.head), described once
        r = client.request("OPTIONS", url)  # no route serves OPTIONS
        assert r.status_code == 405, (url, r.status_code)
        assert r.json()["error"] == "method_not_allowed"
        assert r.headers["allow"] == ", ".join(sorted(documented)), url
