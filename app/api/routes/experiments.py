"""Admin API of A/B experiments (bearer token): create, list, read results, stop.

Handlers translate HTTP to ``app/experiments`` and back. A start or stop is
written to the database; this server's registry refreshes at once and every
other server within ``GENREC_EXPERIMENT_REFRESH_S``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Path
from sqlalchemy.exc import SQLAlchemyError

from app.api.admin_auth import AdminRoute, require_admin
from app.api.deps import Services, ServicesDep
from app.api.responses import ADMIN, BODY, errors
from app.core.db import session_scope
from app.core.errors import ApiError
from app.experiments import definitions, results
from app.experiments.definitions import ExperimentDef, Variant
from app.schemas_experiments import (
    NAME_PATTERN,
    ExperimentIn,
    ExperimentList,
    ExperimentOut,
    ExperimentSummary,
    VariantIn,
)
from app.serving.state import database_unavailable
from models_store import StoreError

router = APIRouter(
    prefix="/admin/experiments",
    tags=["experiments"],
    dependencies=[Depends(require_admin)],
    route_class=AdminRoute,
    responses=errors(*ADMIN),
)

T = TypeVar("T")
NamePath = Path(pattern=NAME_PATTERN, description="experiment name")


@contextmanager
def _api_errors() -> Iterator[None]:
    try:
        yield
    except definitions.InvalidExperiment as exc:
        raise ApiError(422, "invalid_experiment", str(exc)) from exc
    except definitions.ExperimentNotFound as exc:
        raise ApiError(404, "experiment_not_found", str(exc)) from exc
    except definitions.ExperimentConflict as exc:
        raise ApiError(409, "experiment_conflict", str(exc)) from exc
    except StoreError as exc:
        raise ApiError(409, "version_refused", str(exc)) from exc
    except SQLAlchemyError as exc:
        raise database_unavailable(exc) from exc


def _guarded(fn: Callable[[], T]) -> T:
    with _api_errors():
        return fn()


def _summary(exp: ExperimentDef) -> ExperimentSummary:
    return ExperimentSummary(
        name=exp.name,
        status=exp.status,
        control=exp.control,
        variants=[
            VariantIn(name=v.name, model=v.model, version=v.version, weight=v.weight)
            for v in exp.variants
        ],
        window_minutes=exp.window_minutes,
        mixing_sd=exp.mixing_sd,
        created_at=exp.created_at,
        stopped_at=exp.stopped_at,
    )


def _production(services: Services, model: str) -> str | None:
    """The model's production version now (none when the store cannot say)."""
    try:
        return services.holder.store.alias_state(model)
    except StoreError:
        return None


def _results(services: Services, exp: ExperimentDef) -> ExperimentOut:
    """The definition with each variant's counts, comparison with control and the SRM check."""
    settings = services.settings
    services.impressions.flush()  # this replica's queued lists count too
    with session_scope(services.sessions) as session:
        totals = results.load_totals(
            session, exp, settings.experiment_click_types, settings.experiment_conversion_types
        )
    doc = results.summarize(exp, totals)
    variants: list[dict[str, Any]] = []
    for variant, entry in doc["variants"]:
        served = entry["served_versions"]
        version = variant.version or (
            max(served, key=served.get) if served else _production(services, variant.model)
        )
        variants.append(
            {
                "name": variant.name,
                "model": variant.model,
                "version": version,
                "pinned": variant.version is not None,
                "weight": variant.weight,
                **entry,
            }
        )
    return ExperimentOut.model_validate(
        {
            "name": exp.name,
            "status": exp.status,
            "control": exp.control,
            "window_minutes": exp.window_minutes,
            "mixing_sd": exp.mixing_sd,
            "created_at": exp.created_at,
            "stopped_at": exp.stopped_at,
            "variants": variants,
            "srm": doc["srm"],
        }
    )


@router.post(
    "", status_code=201, response_model=ExperimentSummary, responses=errors(*BODY, 409, 503)
)
def create_experiment(body: ExperimentIn, services: ServicesDep) -> ExperimentSummary:
    """Start an experiment: requests that name no model are split between its variants."""
    settings = services.settings
    variants = [
        Variant(v.name, v.model, str(v.version) if v.version is not None else None, v.weight)
        for v in body.variants
    ]

    def start() -> ExperimentDef:
        exp = definitions.create(
            services.sessions,
            services.holder.store,
            body.name,
            variants,
            body.control,
            body.window_minutes or settings.attribution_window_minutes or 30.0,
            body.mixing_sd or settings.experiment_mixing_sd,
        )
        services.experiments.refresh()
        return exp

    return _summary(_guarded(start))


@router.get("", response_model=ExperimentList, responses=errors(503))
def list_experiments(services: ServicesDep) -> ExperimentList:
    """Every experiment's definition, newest first."""
    return ExperimentList(
        experiments=[_summary(e) for e in _guarded(lambda: definitions.list_all(services.sessions))]
    )


@router.get("/{name}", response_model=ExperimentOut, responses=errors(404, 422, 503))
def get_experiment(services: ServicesDep, name: str = NamePath) -> ExperimentOut:
    """The definition and the results so far (counts, rates, comparison with control, SRM)."""
    return _guarded(lambda: _results(services, definitions.get(services.sessions, name)))


@router.post("/{name}/stop", response_model=ExperimentSummary, responses=errors(404, 409, 422, 503))
def stop_experiment(services: ServicesDep, name: str = NamePath) -> ExperimentSummary:
    """Stop it: requests go back to the default model (other servers within the refresh)."""

    def stop() -> ExperimentDef:
        exp = definitions.stop(services.sessions, name)
        services.experiments.refresh()
        return exp

    return _summary(_guarded(stop))
