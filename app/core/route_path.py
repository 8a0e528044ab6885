"""The path a request's route was chosen by, and whether it lies under a prefix.

Why one module: the middlewares that act on a part of the app by path (the API-key
check on ``/v1``, ``no-store`` on ``/admin``, the dashboard's headers, error pages and
smaller body limit) must decide on the path the router routes, not the scope's: under
``uvicorn --root-path /genrec`` the scope's path of ``/dashboard/login`` is
``/genrec/dashboard/login``, which the router strips back. Starlette's own
``get_route_path`` does that stripping exactly as its router does; it lives in a private
module, so it is imported here once. ``under`` is the one prefix rule (``/v1`` covers
``/v1/x`` but not ``/v1x``). ``root_path`` is the other direction: the prefix to put
back before an address the app hands a browser.
"""

from __future__ import annotations

from starlette._utils import get_route_path
from starlette.requests import HTTPConnection
from starlette.types import Scope


def route_path(scope: Scope) -> str:
    """The path the router matches routes against (the root path stripped as it strips it)."""
    return get_route_path(scope)


def under(path: str, prefix: str) -> bool:
    """Whether ``path`` is ``prefix`` or below it."""
    return path == prefix or path.startswith(prefix + "/")


def root_path(request: HTTPConnection) -> str:
    """The prefix the browser sees before the app's paths (``""`` when served at ``/``):
    the application's root path (``app_root_path``, as Starlette's ``base_url`` takes
    it), not a mount's."""
    scope = request.scope
    root: str = scope.get("app_root_path", scope.get("root_path", ""))
    return root.rstrip("/")
