"""``/docs``: Swagger UI from files inside the installed packages, not from a CDN.

FastAPI's default page loads Swagger UI's script and stylesheet from a CDN,
so on a machine without internet access it renders blank. The PyPI package
``swagger-ui-py`` ships Swagger UI's dist files (5.x, which reads the
OpenAPI 3.1 documents FastAPI writes); they are served at
``/docs/assets``. ReDoc (``/redoc``) has no such package and is turned off
rather than left blank.

Both pages carry framing and sniffing headers (``PAGE_HEADERS``): no site may frame
Swagger UI, whose Authorize dialog holds whatever API key or admin token a user pasted,
under a click-jacking overlay. Not the dashboard's strict CSP: FastAPI's page starts
Swagger UI from an inline script, so only ``frame-ancestors`` is set.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from app.core.route_path import root_path

ASSETS = "/docs/assets"

PAGE_HEADERS = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def _swagger_dist() -> Path:
    """The dist folder inside the installed ``swagger-ui-py`` (found without importing it)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or spec.origin is None:
        raise RuntimeError("swagger-ui-py is not installed: pip install swagger-ui-py")
    return Path(spec.origin).parent / "static"


def install_docs(app: FastAPI) -> None:
    """Serve ``/docs`` (and its OAuth2 redirect page) with local assets."""
    app.mount(ASSETS, StaticFiles(directory=_swagger_dist()), name="swagger-ui")

    @app.get("/docs", include_in_schema=False)
    async def swagger_page(request: Request) -> HTMLResponse:
        # Under the root path, as FastAPI's own page does for the schema: behind a proxy
        # serving genrec at /genrec, "/openapi.json" is outside the proxy's prefix.
        root = root_path(request)
        page = get_swagger_ui_html(
            openapi_url=root + (app.openapi_url or "/openapi.json"),
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS}/favicon-32x32.png",
            oauth2_redirect_url=f"{root}/docs/oauth2-redirect",
        )
        page.headers.update(PAGE_HEADERS)
        return page

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    async def swagger_redirect() -> HTMLResponse:
        page = get_swagger_ui_oauth2_redirect_html()
        page.headers.update(PAGE_HEADERS)
        return page
