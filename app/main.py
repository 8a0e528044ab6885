"""``create_app()``: the FastAPI application and its lifespan.

The lifespan opens what requests share — database engine (after migrating
when ``auto_migrate``), user-state cache, model holder with its reload thread,
catalog sync with its poll thread — and closes them on shutdown. Nothing
happens at import time, so tests and ``uvicorn --factory`` build as many
independent apps as they like.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import torch
from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from app import dashboard
from app.api.admin_cache import AdminNoStore
from app.api.body import document_request_bodies
from app.api.deps import Services
from app.api.docs_page import install_docs
from app.api.routes import (
    admin,
    bench,
    catalog,
    experiments,
    health,
    interactions,
    items,
    predictions,
    recommendations,
    users,
)
from app.catalog import CatalogSync
from app.core.allowed_hosts import AllowedHostsMiddleware, any_host
from app.core.api_keys import OPEN_API_WARNING, ApiKeyMiddleware, document_api_keys
from app.core.auth_throttle import AuthThrottle
from app.core.body_encoding import BodyEncodingMiddleware
from app.core.body_limit import BodyLimitMiddleware
from app.core.body_timeout import BodyTimeoutMiddleware
from app.core.cache import make_cache
from app.core.config import Settings, get_settings
from app.core.db import (
    DatabaseGuard,
    make_engine,
    make_read_engine,
    make_sessionmaker,
    make_write_engine,
    upgrade_database,
)
from app.core.errors import document_error_bodies, install_error_handlers, path_hider
from app.core.head import HEAD_NOTE, HeadAsGet
from app.core.logs import configure_logging
from app.core.metrics import Metrics
from app.core.middleware import RequestContextMiddleware
from app.dashboard import close_dashboard, install_dashboard
from app.experiments.assignment import ExperimentRegistry, pinned_versions
from app.rules import AttributeIndex, RuleCompiler
from app.schemas import ErrorResponse
from app.serving.attribution import Attributor
from app.serving.erased import ErasedUsers
from app.serving.holder import ModelHolder, resolve_device
from app.serving.impression_retention import ImpressionRetention
from app.serving.impressions import ImpressionRecorder
from app.serving.interactions import InteractionLogger
from app.serving.late_attribution import LateAttribution
from app.serving.recommend import Recommender
from app.serving.removed import RemovedItems
from app.serving.retrieval import AnnLoader
from app.serving.state import LogReader
from app.serving.titles import CatalogTitles
from app.users import ErasureSync
from models_store import ModelStore

log = logging.getLogger(__name__)


def migrate_at_startup(url: str) -> None:
    """``GENREC_AUTO_MIGRATE``: upgrade the schema before serving. A failure is logged, not
    raised: a down database must not keep the server from starting (``/readyz`` says what
    is wrong). A schema a later release migrated is no failure: this release runs on it
    (a rolling upgrade, or going back to this release), so the line says so as a warning."""
    try:
        left_alone = upgrade_database(url)
    except Exception as exc:
        log.error("database migration at startup failed (/readyz will say so): %s", exc)
        return
    if left_alone is not None:
        log.warning("database migration at startup: %s", left_alone)


def build_services(settings: Settings, metrics: Metrics) -> Services:
    """Open the engine, cache and model holder (not yet started)."""
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    if settings.auto_migrate:
        migrate_at_startup(settings.database_url)
    engine = make_engine(settings.database_url, connect_timeout_s=settings.db_connect_timeout_s)
    reads = make_read_engine(engine, connect_timeout_s=settings.db_connect_timeout_s)
    writes = make_write_engine(engine, connect_timeout_s=settings.db_connect_timeout_s)
    sessions = make_sessionmaker(engine)
    guard = DatabaseGuard(settings.db_retry_s)  # shared: reads and writes see one outage
    cache = make_cache(
        settings.redis_url,
        metrics,
        namespace=settings.cache_namespace,
        ttl_s=settings.cache_ttl_s,
        max_entries=settings.cache_max_entries,
        local_max_entries=settings.cache_local_max_entries,
    )
    holder = ModelHolder(
        ModelStore(settings.store_dir),
        resolve_device(settings.device),
        metrics,
        default_model=settings.default_model if settings.default_model_explicit else None,
        reload_interval_s=settings.reload_interval_s,
    )
    holder.add_load_listener(AnnLoader(settings))  # opens retrieval indexes per GENREC_ANN
    late = LateAttribution(
        engine,
        metrics,
        settings.experiment_click_types,
        settings.experiment_conversion_types,
        window_minutes=settings.attribution_window_minutes,
        weights=settings.event_types,
    )
    impressions = ImpressionRecorder(
        sessions,
        metrics,
        enabled=settings.impressions,
        queue_size=settings.impression_queue_size,
        batch_max=settings.impression_batch_max,
        flush_s=settings.impression_flush_s,
        after_write=late.written,
    )
    attributes = AttributeIndex()  # fed by the catalog sync, read by the rule compiler
    removed = RemovedItems()  # fed by the catalog sync, masked from every list
    titles = CatalogTitles()  # fed by the catalog sync, names every list's items
    erased = ErasedUsers()  # fed by the erasure poll, consulted when resolving a user
    registry = ExperimentRegistry(
        sessions,
        settings.experiment_refresh_s,
        on_change=lambda running: holder.release_pinned(pinned_versions(running)),
    )
    attributor = Attributor(impressions, settings.attribution_window_minutes, settings.event_types)
    return Services(
        settings=settings,
        metrics=metrics,
        engine=engine,
        read_engine=reads,
        write_engine=writes,
        sessions=sessions,
        cache=cache,
        holder=holder,
        recommender=Recommender(
            holder,
            cache,
            LogReader(
                reads,
                guard,
                metrics,
                seen_only_types={t for t, w in settings.event_types.items() if w <= 0},
                erased=erased,
            ),
            settings,
            metrics,
            impressions,
            RuleCompiler(attributes),
            registry,
            removed,
            titles,
        ),
        attributes=attributes,
        removed=removed,
        titles=titles,
        erased=erased,
        auth_throttle=AuthThrottle(settings.admin_max_failures, settings.admin_failure_window_s),
        interactions=InteractionLogger(
            writes, holder, settings, guard, metrics, attributor=attributor, late=late
        ),
        impressions=impressions,
        retention=ImpressionRetention(
            sessions, settings.impression_retention_days, settings.impression_cleanup_interval_s
        ),
        experiments=registry,
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    """The genrec API; ``settings`` default to the environment (``GENREC_*``, ``.env``)."""
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_format)
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = build_services(settings, metrics)
        services.holder.start()
        services.impressions.start()
        services.retention.start()
        services.experiments.start()
        # Applies catalog items to every loaded version and polls the items table.
        sync = CatalogSync(
            services.sessions,
            services.holder,
            settings.reload_interval_s,
            attributes=services.attributes,
            removed=services.removed,
            titles=services.titles,
        )
        sync.start()
        # Polls erased users: serving forgets their cached and trained state.
        erasures = ErasureSync(
            services.sessions,
            services.erased,
            services.cache,
            settings.reload_interval_s,
            impressions=services.impressions,
        )
        erasures.start()
        app.state.services = services
        app.state.catalog = sync
        app.state.erasures = erasures
        try:
            yield
        finally:
            sync.stop()
            erasures.stop()
            # uvicorn has drained in-flight requests (timeout_graceful_shutdown) before
            # this runs; the batchers still score anything queued, then stop.
            await services.recommender.close()
            # Commits the interaction writes still queued (their requests were drained).
            await run_in_threadpool(services.interactions.close)
            await close_dashboard(app)
            # After the batchers: every answered response has queued its impression.
            services.impressions.stop()
            services.retention.stop()
            services.experiments.stop()
            services.holder.stop()
            services.cache.close()
            services.engine.dispose()
            services.read_engine.dispose()
            services.write_engine.dispose()

    app = FastAPI(
        title="genrec",
        version="0.1.0",
        description="Recommendations from deep generative collaborative-filtering models.\n\n"
        + HEAD_NOTE,
        lifespan=lifespan,
        docs_url=None,  # served from local files by install_docs (no CDN)
        redoc_url=None,
        **_without_native_telemetry(),
    )
    install_error_handlers(app, path_hider(settings.store_dir))
    document_error_bodies(app, ErrorResponse)
    document_request_bodies(app)
    # Innermost: a HEAD is routed as the GET it mirrors, past every check a GET meets.
    app.add_middleware(HeadAsGet)
    # Inside the rest: a body the server would misread fails the route's first read at once.
    app.add_middleware(BodyEncodingMiddleware)
    # Inside the request context (added first, so it runs after it): a 413 carries the id.
    app.add_middleware(
        BodyLimitMiddleware,
        limit=lambda: settings.max_body_bytes,
        smaller=((dashboard.PREFIX, dashboard.MAX_FORM_BYTES, "the dashboard's forms"),),
    )
    # Outside the body limit: its read of a streamed body is timed too.
    app.add_middleware(BodyTimeoutMiddleware, timeout_s=settings.body_timeout_s, metrics=metrics)
    install_api_keys(app, settings, metrics)  # outside the body limit: no key, no 413
    # Outside the key check (a foreign Host is a 400 before any 401), inside the request
    # context (the 400 has its request id, access-log line and latency).
    if not any_host(settings.allowed_hosts):
        app.add_middleware(AllowedHostsMiddleware, allowed_hosts=settings.allowed_hosts)
    app.add_middleware(RequestContextMiddleware, metrics=metrics, log_requests=settings.access_log)
    # Outside the request context: its own 400 (a URL that is not UTF-8) is covered too.
    app.add_middleware(AdminNoStore)
    for module in (recommendations, predictions, interactions, items, health):
        app.include_router(module.router)
    app.include_router(admin.router)
    app.include_router(experiments.router)
    app.include_router(catalog.router)
    app.include_router(users.router)
    install_docs(app)
    install_dashboard(app)
    if settings.bench_endpoints:
        app.include_router(bench.router)
    return app


def install_api_keys(app: FastAPI, settings: Settings, metrics: Metrics) -> None:
    """Require ``GENREC_API_KEYS`` on ``/v1`` when set (``app.core.api_keys``); without
    keys nothing is added to a request's path, and the server says once that it is open.
    Added inside the request context, so a refusal has its request id, its latency and
    its access-log line like any answer."""
    keys = [key.get_secret_value() for key in settings.api_keys]
    if not keys:
        log.warning(OPEN_API_WARNING)
        return
    token = settings.admin_token.get_secret_value().strip() if settings.admin_token else ""
    app.add_middleware(
        ApiKeyMiddleware,
        keys=keys,
        admin_token=token or None,
        metrics=metrics,
        throttle=lambda: services_of_app(app).auth_throttle,
    )
    document_api_keys(app)


def services_of_app(app: FastAPI) -> Services:
    """The services the lifespan opened (``app.state.services``)."""
    services: Services = app.state.services
    return services


def _without_native_telemetry() -> dict[str, Any]:
    """Turn off FastAPI's built-in OpenTelemetry hook (FastAPI >= 0.16x) where it exists.

    genrec exports its own Prometheus metrics and request-id logs; the hook looks
    up the global OpenTelemetry providers (environment reads) on every request,
    about 10% of the server's CPU under load in a py-spy profile (docs/performance.md).
    """
    if "telemetry" not in inspect.signature(FastAPI.__init__).parameters:
        return {}
    return {"telemetry": {"tracing": False, "metrics": False, "logs": False}}
