"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import functools
from collections.abc import Callable

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import SQLAlchemyError

from app.api.admin_auth import carries_admin_token
from app.api.admin_cache import NO_STORE
from app.api.deps import ServicesDep
from app.core.db import schema_problem
from app.core.errors import path_hider
from app.schemas import Health, Readiness

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process is up (no dependencies checked)."""
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
def readyz(request: Request, services: ServicesDep) -> JSONResponse:
    """Ready = the default model is loaded; 503 otherwise.

    A database outage does not make the server unready: reads keep answering
    from the artifact and the cache (``degraded``) while writes answer 503, and
    taking every replica out of rotation would turn that into a full outage.

    Probes need only the status code and anyone may ask, so the public body says
    which component is down (``ok``) and nothing more: the details (a connection
    error names the database's host, port and user; a refusal names files and
    versions) go only to a request with the admin token (docs/deployment.md#readiness).
    """
    database: dict[str, bool | str]
    try:
        problem = schema_problem(services.engine)
        database = {"ok": True} if problem is None else {"ok": False, "error": problem}
    except SQLAlchemyError as exc:
        database = {"ok": False, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0]}"}
    cache_ok = services.cache.ping()  # Redis is a cache: reported, never a reason to be unready.
    default = services.holder.default_model
    ready = services.holder.is_loaded(default)
    status = 200 if ready else 503
    served = services.holder.status()
    if not carries_admin_token(request, services):
        public = Readiness(
            ready=ready,
            degraded=not database["ok"],
            database={"ok": database["ok"]},
            cache={"ok": cache_ok},
            models={name: {"loaded": model["loaded"]} for name, model in served.items()},
            default_model=default,
            reason=None if ready else f"the default model ({default}) is not loaded",
        )
        return JSONResponse(public.model_dump(), status_code=status)
    # Even with the token a refusal names the version's files relative to the store, as
    # every API answer does, not where the store is on the server's disk.
    hide = _hider(str(services.settings.store_dir))
    reason = None if ready else services.holder.default_problem()
    body = Readiness(
        ready=ready,
        degraded=not database["ok"],
        database=database,
        cache={"ok": cache_ok, "backend": services.cache.kind},
        models={
            name: {**model, "error": hide(model["error"]) if model["error"] else None}
            for name, model in served.items()
        },
        default_model=default,
        reason=hide(reason) if reason else None,
    )
    # Operator data, like every /admin answer (app.api.admin_cache): no cache keeps it.
    return JSONResponse(body.model_dump(), status_code=status, headers={"Cache-Control": NO_STORE})


@functools.lru_cache(maxsize=8)
def _hider(store_dir: str) -> Callable[[str], str]:
    """``path_hider`` of the store, built once (a regular expression per probe otherwise)."""
    return path_hider(store_dir)


@router.get("/metrics", include_in_schema=False)
def metrics(services: ServicesDep) -> Response:
    """Prometheus text exposition of this app's registry."""
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)
