"""What the body-read checks at the HTTP edge cost a request, GET and POST.

``app.core.body_timeout`` wraps ``receive`` to time each wait for more of a body
(``GENREC_BODY_TIMEOUT_S``); ``app.core.body_encoding`` reads a POST's
``Content-Encoding`` and ``Content-Type`` to refuse a body it would misread. This drives a bare ASGI app that reads its body the way
a route does (``receive`` until the body is complete; a GET's route reads none) and
answers, alone and behind each middleware and both, straight through ASGI (no sockets, no
server, no FastAPI: the layer's own cost is the point, and on the 2-core development
machine a whole route's noise is larger than it), and prints the time per request of
each. The body is there at the first ``receive``, as a small body sent with its
headers is, so the timer is set and cancelled at once.

    PYTHONPATH=. python benchmarks/body_edge.py [--requests 50000] [--repeats 7]

Medians of ``--repeats`` runs, in CPU microseconds per request; one line of JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.body_encoding import BodyEncodingMiddleware
from app.core.body_timeout import BodyTimeoutMiddleware
from app.core.metrics import Metrics

BODY = json.dumps({"user_id": "u1", "item_ids": [str(i) for i in range(20)]}).encode()
START = {"type": "http.response.start", "status": 200, "headers": []}
END = {"type": "http.response.body", "body": b"{}"}


async def route(scope: Scope, receive: Receive, send: Send) -> None:
    """Reads the body when the method has one (as ``request.body()``), then answers."""
    if scope["method"] == "POST":
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
    await send(START)
    await send(END)


def _timed(app: ASGIApp) -> ASGIApp:
    return BodyTimeoutMiddleware(app, timeout_s=60.0, metrics=Metrics())


VARIANTS: dict[str, Callable[[], ASGIApp]] = {
    "bare": lambda: route,
    "body-timeout": lambda: _timed(route),
    "body-encoding": lambda: BodyEncodingMiddleware(route),
    "both": lambda: _timed(BodyEncodingMiddleware(route)),  # as app.main stacks them
}
#: A POST's headers as a client sends them (what the encoding check reads).
HEADERS = {
    "GET": [(b"host", b"bench"), (b"accept", b"*/*"), (b"user-agent", b"bench/1")],
    "POST": [
        (b"host", b"bench"),
        (b"accept", b"*/*"),
        (b"user-agent", b"bench/1"),
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(BODY)),
    ],
}


async def _drive(app: ASGIApp, method: str, requests: int) -> float:
    """CPU seconds of this process per request of ``requests`` sequential requests through
    ASGI (process time, not wall time: on a shared machine other processes' load would be
    counted in the wall time of whichever variant ran beside it)."""
    body = BODY if method == "POST" else b""

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Any) -> None:
        pass

    scope = {"type": "http", "method": method, "path": "/x", "headers": HEADERS[method]}
    started = time.process_time()
    for _ in range(requests):
        await app(scope, receive, send)
        # A server's loop runs between two requests, and drops cancelled timers there;
        # without it they would pile up in the loop's heap (the same for every variant).
        await asyncio.sleep(0)
    return (time.process_time() - started) / requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    apps = {name: build() for name, build in VARIANTS.items()}
    runs: dict[str, list[float]] = {f"{n} {m}": [] for m in ("GET", "POST") for n in apps}
    for _ in range(args.repeats):  # interleaved: drift hits every variant alike
        for method in ("GET", "POST"):
            for name, app in apps.items():
                runs[f"{name} {method}"].append(asyncio.run(_drive(app, method, args.requests)))
    result = {name: round(statistics.median(times) * 1e6, 2) for name, times in runs.items()}
    print(json.dumps({"us_per_request": result, **vars(args)}))


if __name__ == "__main__":
    main()
