"""Experiment definitions: validation against the model store, and their rows.

The rules (what a valid experiment is, when it may start or stop) live here;
the admin routes translate HTTP to these calls and the exceptions below to
4xx answers. At most one experiment runs at a time (the ``running`` column's
unique constraint; a second start is ``ExperimentConflict``): two experiments
on the same traffic would each see the other's variants as noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app.core.db import session_scope
from app.db_models import Experiment
from app.repository import as_utc
from models_store import AliasNotSet, InvalidName, ModelNotFound, ModelStore, VersionNotFound
from training.models import REGISTRY


class InvalidExperiment(ValueError):
    """The definition is wrong (unknown model or version, bad weights, ...): a 422."""


class ExperimentNotFound(LookupError):
    """No experiment of that name: a 404."""


class ExperimentConflict(RuntimeError):
    """The name is taken, another experiment runs, or it is already stopped: a 409."""


@dataclass(frozen=True)
class Variant:
    name: str
    model: str
    version: str | None  # None = the model's production version, whatever it is when served
    weight: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model": self.model,
            "version": self.version,
            "weight": self.weight,
        }


@dataclass(frozen=True)
class ExperimentDef:
    """An experiment as stored; ``variants[0]`` is not necessarily ``control``."""

    name: str
    status: str
    control: str
    variants: tuple[Variant, ...]
    window_minutes: float
    mixing_sd: float
    created_at: datetime
    stopped_at: datetime | None

    def variant(self, name: str) -> Variant:
        return next(v for v in self.variants if v.name == name)


def _utc(value: datetime | None) -> datetime | None:
    """In UTC whatever the database session's time zone: Postgres returns a
    ``timestamptz`` in the session's zone (``PGTZ``), SQLite a naive UTC value."""
    return None if value is None else as_utc(value)


def from_row(row: Experiment) -> ExperimentDef:
    return ExperimentDef(
        name=row.name,
        status=row.status,
        control=row.control,
        variants=tuple(
            Variant(v["name"], v["model"], v.get("version"), float(v["weight"]))
            for v in row.variants
        ),
        window_minutes=row.window_minutes,
        mixing_sd=row.mixing_sd,
        created_at=_utc(row.created_at) or datetime.now(UTC),
        stopped_at=_utc(row.stopped_at),
    )


def check_definition(
    store: ModelStore, variants: Sequence[Variant], control: str | None
) -> tuple[list[Variant], str]:
    """The variants with versions checked against the store, and the control's name.

    Unknown model, unknown version, a model with no production version when none
    is named, duplicate variant names, weights that are negative, not finite or
    do not sum to a positive number: ``InvalidExperiment`` saying which.
    """
    if len(variants) < 2:
        raise InvalidExperiment("an experiment needs at least two variants (control and one more)")
    names = [v.name for v in variants]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InvalidExperiment(f"variant names must be unique; repeated: {', '.join(duplicates)}")
    for v in variants:
        if not math.isfinite(v.weight) or v.weight < 0:
            raise InvalidExperiment(
                f"variant {v.name!r}: weight must be a finite number >= 0, got {v.weight}"
            )
    total = sum(v.weight for v in variants)
    if not total > 0:
        raise InvalidExperiment("variant weights must sum to a positive number")
    if not math.isfinite(total):  # 1e308 + 1e308: assignment would divide by infinity
        raise InvalidExperiment(f"variant weights must sum to a finite number, got {total}")
    control_name = control if control is not None else variants[0].name
    if control_name not in names:
        raise InvalidExperiment(
            f"control {control_name!r} is not one of the variants ({', '.join(names)})"
        )
    if next(v.weight for v in variants if v.name == control_name) == 0:
        # A variant of weight 0 is a paused arm; a paused control leaves every comparison
        # without its baseline, so the experiment could never say anything.
        raise InvalidExperiment(
            f"control {control_name!r} has weight 0: it would get no users, and every "
            "variant is compared with it"
        )
    available = [m for m in store.list_models() if m in REGISTRY]
    checked = []
    for v in variants:
        if v.model not in available:
            raise InvalidExperiment(
                f"variant {v.name!r}: unknown model {v.model!r}; available: "
                f"{', '.join(available) or 'none'}"
            )
        try:
            store.resolve(v.model, v.version if v.version is not None else "production")
        except (VersionNotFound, InvalidName, ModelNotFound) as exc:
            # The store's message already names the model, the version and the versions
            # there are; said once, after the variant it is about.
            raise InvalidExperiment(f"variant {v.name!r}: {exc}") from exc
        except AliasNotSet as exc:
            raise InvalidExperiment(
                f"variant {v.name!r}: model {v.model!r} has no production version; "
                "name a version or promote one"
            ) from exc
        checked.append(v)
    return checked, control_name


def create(
    sessions: sessionmaker[Session],
    store: ModelStore,
    name: str,
    variants: Sequence[Variant],
    control: str | None,
    window_minutes: float,
    mixing_sd: float,
    now: datetime | None = None,
) -> ExperimentDef:
    """Validate and start an experiment (durable before this returns).

    The check and the insert hold the store's lock of each model a variant pins a
    version of (``ModelStore.holding``), which ``genrec models delete`` takes for its
    own check: a delete and a creation are then one after the other, so the creation
    sees the version gone or the delete sees the experiment (checked apart, a version
    deleted between them left the variant nothing to load). A variant on the
    production version needs no lock: the store refuses to delete what an alias names.
    """
    with store.holding([v.model for v in variants if v.version is not None]):
        checked, control_name = check_definition(store, variants, control)
        return _insert(sessions, name, checked, control_name, window_minutes, mixing_sd, now)


def _insert(
    sessions: sessionmaker[Session],
    name: str,
    checked: Sequence[Variant],
    control_name: str,
    window_minutes: float,
    mixing_sd: float,
    now: datetime | None,
) -> ExperimentDef:
    """Record a checked experiment as the running one; ``ExperimentConflict`` when the name
    is taken or another one runs."""
    try:
        with session_scope(sessions) as session:
            if session.get(Experiment, name) is not None:
                raise ExperimentConflict(f"an experiment named {name!r} exists; names are unique")
            other = session.execute(
                select(Experiment.name).where(Experiment.running.is_(True))
            ).scalar_one_or_none()
            if other is not None:
                raise ExperimentConflict(
                    f"experiment {other!r} is running; stop it first "
                    f"(POST /admin/experiments/{other}/stop): one experiment runs at a time"
                )
            row = Experiment(
                name=name,
                status="running",
                running=True,
                control=control_name,
                variants=[v.to_dict() for v in checked],
                window_minutes=window_minutes,
                mixing_sd=mixing_sd,
                created_at=now or datetime.now(UTC),
                stopped_at=None,
            )
            session.add(row)
            session.flush()
            return from_row(row)
    except IntegrityError as exc:  # a concurrent create won the name or the running slot
        raise ExperimentConflict(
            f"experiment {name!r} conflicts with one created at the same time: {exc.orig}"
        ) from exc


def list_all(sessions: sessionmaker[Session]) -> list[ExperimentDef]:
    """Every experiment, newest first."""
    with session_scope(sessions) as session:
        rows = session.execute(select(Experiment).order_by(Experiment.created_at.desc())).scalars()
        return [from_row(r) for r in rows]


def running(session: Session) -> ExperimentDef | None:
    """The running experiment, if any (the assignment registry's poll)."""
    row = session.execute(
        select(Experiment).where(Experiment.running.is_(True))
    ).scalar_one_or_none()
    return None if row is None else from_row(row)


def pinning_variant(
    sessions: sessionmaker[Session], model: str, version: str
) -> tuple[str, str] | None:
    """(experiment, variant) where the running experiment pins ``model`` at ``version``.

    Why: the store knows nothing of experiments (``models_store`` never imports
    ``app``), so ``genrec models delete`` asks here before deleting a version a
    running variant serves. Only the running experiment counts: a stopped one's
    results are computed from its impressions, never from the version.
    """
    with session_scope(sessions) as session:
        current = running(session)
    if current is None:
        return None
    for variant in current.variants:
        if variant.model == model and variant.version == version:
            return current.name, variant.name
    return None


def get(sessions: sessionmaker[Session], name: str) -> ExperimentDef:
    with session_scope(sessions) as session:
        row = session.get(Experiment, name)
        if row is None:
            raise ExperimentNotFound(f"no experiment named {name!r}")
        return from_row(row)


def stop(sessions: sessionmaker[Session], name: str, now: datetime | None = None) -> ExperimentDef:
    """Stop a running experiment: from then on requests go to the default model.

    One conditional UPDATE (``WHERE running``), so of two stops at once exactly one
    stops it and the other is a conflict, on SQLite too, which has no row lock for a
    ``SELECT ... FOR UPDATE`` (both read "running" there, both answered 200 and the
    second rewrote ``stopped_at``).
    """
    with session_scope(sessions) as session:
        stopped = session.execute(
            update(Experiment)
            .where(Experiment.name == name, Experiment.running.is_(True))
            .values(status="stopped", running=None, stopped_at=now or datetime.now(UTC))
        )
        row = session.get(Experiment, name)
        if row is None:
            raise ExperimentNotFound(f"no experiment named {name!r}")
        if stopped.rowcount == 0:  # type: ignore[attr-defined]
            raise ExperimentConflict(f"experiment {name!r} is already stopped")
        return from_row(row)
