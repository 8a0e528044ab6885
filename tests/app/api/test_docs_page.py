"""``/docs`` under a root path: Swagger UI's assets and the schema are asked for under it.

The page is ours (local assets, ``app.api.docs_page``), not FastAPI's, which puts the
root path before the schema's URL; ours wrote ``/docs/assets/...`` and
``/openapi.json``, so behind a proxy serving genrec at ``/genrec`` the page loaded
nothing (those addresses are outside the proxy's prefix).
"""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from app.main import create_app
from tests.app.conftest import embedded_settings

ROOT = "/genrec"


def test_docs_ask_for_their_assets_and_schema_under_the_root_path() -> None:
    client = TestClient(create_app(embedded_settings()), root_path=ROOT)
    page = client.get(f"{ROOT}/docs").text
    addresses = re.findall(r"""(?:url|href|src|oauth2RedirectUrl)[:=] ?['"]([^'"]+)['"]""", page)
    assert len(addresses) >= 4, page
    outside = [a for a in addresses if not a.startswith(f"{ROOT}/")]
    assert not outside, outside
    for address in addresses:
        if not address.endswith("oauth2-redirect"):
            assert client.get(address).status_code == 200, address
    assert f"{ROOT}/docs/oauth2-redirect" in page


def test_without_a_root_path_the_docs_are_as_before() -> None:
    page = TestClient(create_app(embedded_settings())).get("/docs").text
    assert "'/openapi.json'" in page and '"/docs/assets/swagger-ui-bundle.js"' in page


def test_the_docs_page_may_not_be_framed_sniffed_or_leak_its_address() -> None:
    """``/docs`` went out with none of the dashboard's framing headers: any site could frame
    Swagger UI (whose Authorize dialog holds the admin token a user pasted) under a
    click-jacking overlay. Its inline script keeps it off the dashboard's strict CSP."""
    client = TestClient(create_app(embedded_settings()))
    for path in ("/docs", "/docs/oauth2-redirect"):
        headers = client.get(path).headers
        assert headers["x-frame-options"] == "DENY", path
        assert headers["content-security-policy"] == "frame-ancestors 'none'", path
        assert headers["x-content-type-options"] == "nosniff", path
        assert headers["referrer-policy"] == "same-origin", path
