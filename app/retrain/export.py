"""What a retrain job trains on: the interaction log, optionally on top of the base data set.

``log``: every event logged at or before the job's cutoff (the log reader
takes exactly the complement of what serving folds in after that cutoff).

``log+base``: the data set the current production version was trained on
(its manifest's ``data.source``: ``ml-100k``, a CSV path, ...) followed by
the log. Versions written by jobs record ``<base>+log`` as their source, so
the chain keeps finding its base. A base that cannot be loaded here (a file
on another machine, a data set not downloaded) is noted in the job's log
and the job trains on the log alone, as it does, with a note too, for a
model with no production version; the gate still compares the result with
production before anything is promoted.

Base records come first and in their own order: the pipeline's per-user
hold-out then picks the same records for unchanged users as production's own
training did (see ``app/retrain/gate.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from sqlalchemy.exc import SQLAlchemyError

from app.core.config import Settings
from models_store import ModelStore, StoreError
from training.data.datasets import load_dataset
from training.data.errors import DataError
from training.data.files import build_interactions
from training.data.interactions import Interactions
from training.data.log_reader import log_cutoff, read_interaction_log
from training.models import trains_on_ratings

#: Suffix of a job-written version's ``data.source``: ``ml-100k+log``.
LOG_SUFFIX = "+log"
#: Sources that name the log itself (no separate base data set).
LOG_SOURCES = ("", "log", "db")


@dataclass(frozen=True)
class Exported:
    """The job's training data and how to describe it in the manifest."""

    data: Interactions
    source: str
    notes: list[str]


def base_spec(source: str) -> str | None:
    """The base data set named by a manifest's ``data.source`` (None: the log alone)."""
    spec = source.removesuffix(LOG_SUFFIX)
    return None if spec in LOG_SOURCES else spec


def production_source(store: ModelStore, model: str) -> str | None:
    """``data.source`` of ``model``'s production version, None when it has none."""
    try:
        version = store.alias_state(model)
        return None if version is None else store.manifest(model, version).data.source
    except StoreError:
        return None


def export_interactions(
    kind: str, model: str, store: ModelStore, settings: Settings, until: datetime
) -> Exported:
    """The job's training data (see the module docstring); DataError when there is none."""
    notes: list[str] = []
    source = production_source(store, model) if kind == "log+base" else None
    if kind == "log+base" and source is None:
        notes.append(
            f"no production version of {model!r} to take the base data set from; "
            "training on the log alone"
        )
    spec = base_spec(source or "")
    base = _load_base(spec, settings, notes) if spec else None
    try:
        logged = read_log(settings, until, ratings_only=trains_on_ratings(model))
    except DataError as exc:
        if base is None:
            raise
        notes.append(f"training on the base data alone: {exc}")
        return Exported(base, spec or "", notes)
    if base is None:
        return Exported(logged, "log", notes)
    return Exported(concat(base, logged), f"{spec}{LOG_SUFFIX}", notes)


def read_log(settings: Settings, until: datetime, *, ratings_only: bool) -> Interactions:
    """The interaction log up to ``until`` (retrain and tune jobs alike; ``job_cutoff``);
    ``ratings_only`` for a rating model or search: a log's unrated rows are no ratings
    (``training.data.log_reader``).

    The log reader says a database error as a ``DataError`` (one line, for the CLI);
    a job must not take it for data it cannot use: a ``log`` job was failed for good
    by a database restart, a ``log+base`` one trained on the base alone. The
    database's error is raised as itself, so the attempt stops as "interrupted"
    and the job's next attempt reads the log again (``app.retrain.runner``).
    """
    with _database_errors_as_themselves():
        return read_interaction_log(
            settings.database_url,
            until=until,
            event_weights=settings.event_types,
            ratings_only=ratings_only,
        )


def job_cutoff(settings: Settings) -> datetime:
    """The cutoff of a job's log read about to start (``log_reader.log_cutoff``: the
    database's clock less the commit margin); a database error as itself (``read_log``)."""
    with _database_errors_as_themselves():
        return log_cutoff(settings.database_url)


@contextmanager
def _database_errors_as_themselves() -> Iterator[None]:
    try:
        yield
    except DataError as exc:
        cause = exc.__cause__
        if isinstance(cause, SQLAlchemyError):
            raise cause from cause.__cause__  # the driver's error, as it was
        raise


def _load_base(spec: str, settings: Settings, notes: list[str]) -> Interactions | None:
    try:
        data = load_dataset(
            spec,
            data_dir=Path(settings.data_dir) if settings.data_dir else None,
            cache_dir=Path(settings.cache_dir) if settings.cache_dir else None,
            database_url=settings.database_url,
            allow_download=False,  # a worker must not start a download mid-job
        )
    except (DataError, OSError) as exc:
        notes.append(f"base data {spec!r} is not loadable here ({exc}); training on the log alone")
        return None
    notes.append(f"base data {spec!r}: {len(data):,} interactions")
    return data


def concat(base: Interactions, logged: Interactions) -> Interactions:
    """``base`` records, then ``logged`` ones, over fresh id maps (duplicates: latest wins later).

    A log with no ratings at all is clicks; on an explicit base each click
    gets the top rating, the value serving gives a click for ranking models.
    """
    log_ratings = logged.ratings
    if base.explicit and not logged.explicit and len(base):
        log_ratings = np.full(len(logged), float(base.ratings.max()), dtype=np.float32)
    users = np.concatenate(
        [_external(base.user_ids.ids, base.users), _external(logged.user_ids.ids, logged.users)]
    )
    items = np.concatenate(
        [_external(base.item_ids.ids, base.items), _external(logged.item_ids.ids, logged.items)]
    )
    return build_interactions(
        users,
        items,
        np.concatenate([base.ratings, log_ratings]).astype(np.float32),
        np.concatenate([base.timestamps, logged.timestamps]).astype(np.int64),
        explicit=base.explicit or logged.explicit,
        item_meta=base.item_meta,
    )


def _external(ids: tuple[str, ...], index: np.ndarray) -> np.ndarray:
    external: np.ndarray = np.asarray(ids, dtype=object)[index]
    return external
