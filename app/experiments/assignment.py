"""Which variant serves a request: a deterministic hash, over a cached experiment.

``bucket(experiment, unit)`` hashes ``experiment + NUL + unit id`` with SHA-256
(``hashlib``: the same on every replica and Python version, unlike ``hash()``)
into [0, 1); the variants' weights cut [0, 1) into consecutive ranges in their
listed order. A user therefore stays in one variant across requests and
replicas for the experiment's life, and two experiments split users
independently.

The request path never reads the database: ``ExperimentRegistry`` keeps the
running experiment in memory and a background thread re-reads it every
``refresh_s`` (``GENREC_EXPERIMENT_REFRESH_S``), so a started or stopped
experiment reaches every replica within that time; the replica that took the
admin call refreshes at once. When the database cannot be read the last known
state is kept (and the failure logged).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app.core.db import session_scope
from app.core.poller import Poller
from app.experiments import definitions
from app.experiments.definitions import ExperimentDef, Variant

log = logging.getLogger(__name__)

_SCALE = float(2**64)


def bucket(experiment: str, unit_id: str) -> float:
    """A number in [0, 1) fixed by (experiment, unit id), uniform over unit ids."""
    digest = hashlib.sha256(f"{experiment}\0{unit_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def choose(experiment: str, variants: Sequence[Variant], unit_id: str) -> Variant:
    """The variant whose weight range holds ``bucket(experiment, unit_id)``."""
    total = sum(v.weight for v in variants)
    point = bucket(experiment, unit_id) * total
    edge = 0.0
    for v in variants:
        edge += v.weight
        if point < edge and v.weight > 0:
            return v
    return next(v for v in reversed(variants) if v.weight > 0)  # rounding at the top edge


def pinned_versions(experiment: ExperimentDef | None) -> set[tuple[str, str]]:
    """(model, version) of the variants that name a version: what the holder keeps."""
    if experiment is None:
        return set()
    return {(v.model, v.version) for v in experiment.variants if v.version is not None}


@dataclass(frozen=True)
class Assignment:
    """A request's place in the running experiment."""

    experiment: str
    variant: str
    model: str
    version: str | None  # None = production


class ExperimentRegistry:
    """The running experiment as this process knows it; ``assign`` is a dict-free lookup."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        refresh_s: float = 2.0,
        on_change: Callable[[ExperimentDef | None], None] | None = None,
    ) -> None:
        """``on_change`` is called with the running experiment (or None) when it changes,
        before requests are assigned to it (the holder pins the versions its variants
        name, and drops those no variant needs any more)."""
        self.sessions = sessions
        self.refresh_s = refresh_s
        self.on_change = on_change
        self._current: ExperimentDef | None = None
        self._poller = Poller("experiments", self.refresh, refresh_s)

    @property
    def current(self) -> ExperimentDef | None:
        return self._current

    def assign(self, unit_id: str | None) -> Assignment | None:
        """The variant of ``unit_id`` (a user or session id) in the running experiment."""
        current = self._current
        if current is None or unit_id is None:
            return None
        chosen = choose(current.name, current.variants, unit_id)
        return Assignment(current.name, chosen.name, chosen.model, chosen.version)

    def refresh(self) -> None:
        """Re-read the running experiment (the poll; also called after an admin change)."""
        try:
            with session_scope(self.sessions) as session:
                current = definitions.running(session)
        except SQLAlchemyError as exc:
            log.warning("reading the running experiment failed (keeping the last known): %s", exc)
            return
        previous = self._current
        if previous != current:
            log.info("experiment: %s", f"{current.name} running" if current else "none running")
            # Before requests are assigned to it: the holder pins only the versions it
            # was told of, and refused a request assigned in between (a fallback).
            if self.on_change is not None:
                self.on_change(current)
        self._current = current

    def start(self) -> None:
        """Read the running experiment, then poll at ``refresh_s`` (no-op while polling)."""
        if self._poller.running:
            return
        self.refresh()
        self._poller.start()

    def stop(self) -> None:
        self._poller.stop()
