"""``GET /v1/_bench/constant``: the HTTP stack's ceiling, for ``benchmarks/serve_bench.py``.

It goes through the same server, middleware (request id, latency metric,
access log) and JSON rendering as every endpoint but does no work, so the
benchmark can state what fraction of that ceiling the real endpoints reach.
Mounted only when ``GENREC_BENCH_ENDPOINTS=true``; hidden from the OpenAPI page.
"""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1/_bench", tags=["bench"], include_in_schema=False)

_CONSTANT = {"status": "ok"}


@router.get("/constant")
async def constant() -> dict[str, str]:
    """A constant body, no dependencies."""
    return _CONSTANT
