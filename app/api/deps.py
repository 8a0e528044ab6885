"""The objects a request needs, built once in the app's lifespan (``app.state.services``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.core.auth_throttle import AuthThrottle
from app.core.cache import StateCache
from app.core.config import Settings
from app.core.metrics import Metrics
from app.experiments.assignment import ExperimentRegistry
from app.rules import AttributeIndex
from app.serving.erased import ErasedUsers
from app.serving.holder import ModelHolder
from app.serving.impression_retention import ImpressionRetention
from app.serving.impressions import ImpressionRecorder
from app.serving.interactions import InteractionLogger
from app.serving.recommend import Recommender
from app.serving.removed import RemovedItems
from app.serving.titles import CatalogTitles


@dataclass
class Services:
    """Everything the lifespan opens and the routes use; closed on shutdown."""

    settings: Settings
    metrics: Metrics
    engine: Engine
    #: ``make_read_engine``'s: the serving path's log reads (``engine`` itself on SQLite).
    read_engine: Engine
    #: ``make_write_engine``'s: the interaction writer's (``engine`` itself on SQLite).
    write_engine: Engine
    sessions: sessionmaker[Session]
    cache: StateCache
    holder: ModelHolder
    recommender: Recommender
    interactions: InteractionLogger
    impressions: ImpressionRecorder
    retention: ImpressionRetention
    experiments: ExperimentRegistry
    #: The catalog's attributes, fed by the catalog sync; rules compile against them.
    attributes: AttributeIndex = field(default_factory=AttributeIndex)
    #: Items removed from the catalog, fed by the catalog sync; the recommender's own.
    removed: RemovedItems = field(default_factory=RemovedItems)
    #: The catalog's titles of live items, fed by the catalog sync; the recommender's own.
    titles: CatalogTitles = field(default_factory=CatalogTitles)
    #: Erased users, fed by the erasure poll (``app.users.sync``); the log reader's own.
    erased: ErasedUsers = field(default_factory=ErasedUsers)
    #: Wrong admin tokens per client address (admin API and dashboard login).
    auth_throttle: AuthThrottle = field(default_factory=AuthThrottle)


def services_of(request: Request) -> Services:
    """The app's services, for routes that take the ``Request`` instead of the dependency."""
    services: Services = request.app.state.services
    return services


async def get_services(request: Request) -> Services:
    # A coroutine on purpose: FastAPI runs a sync dependency in the thread pool,
    # which would cost every request a thread hop for a dictionary lookup.
    return services_of(request)


ServicesDep = Annotated[Services, Depends(get_services)]
