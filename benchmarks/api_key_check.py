"""What the API-key check costs a request: a pure ASGI middleware vs a router dependency.

``app.core.api_keys`` checks ``GENREC_API_KEYS`` in a middleware; the other way
to write it is a FastAPI dependency on the ``/v1`` routers (as the admin token's
``require_admin`` is). This drives four minimal FastAPI apps with one constant
``GET /v1/x`` route straight through ASGI (no sockets, no server: the difference
is the point, not the total) and prints the time per request of each:

- ``open``: no check (what a server without keys runs);
- ``middleware``: ``ApiKeyMiddleware`` with two keys;
- ``dependency``: an async router dependency through ``HTTPBearer`` (``Security``),
  comparing the same two keys;
- ``dependency-raw``: an async router dependency reading the header itself.

    PYTHONPATH=. python benchmarks/api_key_check.py [--requests 20000] [--repeats 5]

Medians of ``--repeats`` runs, in CPU microseconds per request; one line of JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import json
import statistics
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.core.api_keys import ApiKeyMiddleware
from app.core.auth_throttle import AuthThrottle
from app.core.metrics import Metrics

KEYS = ("a" * 32, "b" * 32)
HEADERS = [(b"host", b"bench"), (b"authorization", f"Bearer {KEYS[1]}".encode())]


def _route(app: FastAPI, dependencies: list[Any] | None = None) -> FastAPI:
    router = APIRouter(prefix="/v1", dependencies=dependencies or [])

    @router.get("/x")
    async def constant() -> Response:
        return Response(b"{}", media_type="application/json")

    app.include_router(router)
    return app


def open_app() -> FastAPI:
    return _route(FastAPI())


def middleware_app() -> FastAPI:
    app = _route(FastAPI())
    throttle = AuthThrottle()
    app.add_middleware(
        ApiKeyMiddleware, keys=KEYS, admin_token=None, metrics=Metrics(), throttle=lambda: throttle
    )
    return app


bearer = HTTPBearer(auto_error=False)
ENCODED = tuple(key.encode() for key in KEYS)


async def require_key(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    if credentials is None:
        raise HTTPException(401)
    sent, matched = credentials.credentials.encode(), False
    for key in ENCODED:
        matched |= hmac.compare_digest(sent, key)
    if not matched:
        raise HTTPException(401)


async def require_key_raw(request: Request) -> None:
    scheme, _, sent = request.headers.get("authorization", "").partition(" ")
    matched = False
    for key in ENCODED:
        matched |= hmac.compare_digest(sent.encode(), key)
    if scheme.lower() != "bearer" or not matched:
        raise HTTPException(401)


def dependency_app() -> FastAPI:
    return _route(FastAPI(), [Depends(require_key)])


def raw_dependency_app() -> FastAPI:
    return _route(FastAPI(), [Depends(require_key_raw)])


async def _drive(app: FastAPI, requests: int) -> float:
    """CPU seconds of this process per request of ``requests`` sequential GETs through ASGI
    (process time, not wall time: on a shared machine other processes' load would be
    counted in the wall time of whichever variant ran beside it)."""
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    scope_template = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/v1/x",
        "raw_path": b"/v1/x",
        "root_path": "",
        "query_string": b"",
        "headers": HEADERS,
        "client": ("127.0.0.1", 5000),
        "server": ("bench", 80),
    }
    started = time.process_time()
    for _ in range(requests):
        await app(dict(scope_template), receive, send)
    elapsed = time.process_time() - started
    if set(statuses) != {200}:
        raise SystemExit(f"unexpected statuses {sorted(set(statuses))}")
    return elapsed / requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    apps = {
        "open": open_app(),
        "middleware": middleware_app(),
        "dependency": dependency_app(),
        "dependency-raw": raw_dependency_app(),
    }
    runs: dict[str, list[float]] = {name: [] for name in apps}
    for _ in range(args.repeats):  # interleaved: drift hits every variant alike
        for name, app in apps.items():
            runs[name].append(asyncio.run(_drive(app, args.requests)))
    result = {name: round(statistics.median(times) * 1e6, 2) for name, times in runs.items()}
    print(json.dumps({"us_per_request": result, "requests": args.requests, **vars(args)}))


if __name__ == "__main__":
    main()
