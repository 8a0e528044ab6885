"""A tune request: its fields (the CLI's options), its validation, and recording it as a job.

Validation is ``training.tuning.search.check_settings``, the same code ``genrec
tune`` runs before it reads any data, so a request that the CLI would refuse is
refused here at POST time (422) with the same message, not minutes later in a
worker. The data is always the service's own interaction log (``--data db``).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app import repository as repo
from app.core.db import session_scope
from app.db_models import RetrainJob
from app.retrain.lifecycle import (
    DEFAULT_MAX_ATTEMPTS,
    DuplicateJob,
    InvalidJob,
    Trigger,
    log_skip_once,
    record_job,
    utcnow,
)
from training.tuning.errors import TuningError
from training.tuning.search import SearchSettings, check_settings

log = logging.getLogger(__name__)

#: ``retrain_jobs.kind`` and ``.model`` of a tune job (the model is only known at the end).
TUNE = "tune"
#: CLI option names in ``check_settings``' messages, as the request's fields are named.
_FIELD_NAMES = {
    "--budget-minutes": "budget_minutes",
    "--trials": "trials",
    "--models": "models",
    "--task": "task",
    "--split": "split",
    "--metric": "metric",
    "--confirm-folds": "confirm_folds",
    "--seed": "seed",
}


@dataclass(frozen=True)
class TuneRequest:
    """What to search (the fields of ``genrec tune``, less ``--data``: it is the log)."""

    task: str = "topk"
    models: tuple[str, ...] | None = None  # None: every model of the task
    budget_minutes: float = 10.0
    trials: int | None = None
    split: str | None = None
    metric: str | None = None
    seed: int = 0
    promote: bool = False
    confirm_folds: int | None = None  # None: by the budget (``training.tuning.confirm``)

    def search_settings(self) -> SearchSettings:
        return SearchSettings(
            task=self.task,
            models=list(self.models) if self.models is not None else None,
            budget_seconds=self.budget_minutes * 60.0,
            max_trials=self.trials,
            split=self.split,
            metric=self.metric,
            seed=self.seed,
            confirm_folds=self.confirm_folds,
        )

    def to_params(self) -> dict[str, Any]:
        """The job row's ``params`` (JSON)."""
        params = asdict(self)
        params["models"] = list(self.models) if self.models is not None else None
        return params

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> TuneRequest:
        """The request a job row's ``params`` hold; ``InvalidJob`` naming the fields this
        release does not know (a row another release queued), which fails that job."""
        unknown = sorted(set(params) - {f.name for f in fields(cls)})
        if unknown:
            raise InvalidJob(
                f"the tune job's params hold fields this release does not know: "
                f"{', '.join(repr(name) for name in unknown)}"
            )
        models = params.get("models")
        return cls(**{**params, "models": tuple(models) if models is not None else None})


def validate_tune(request: TuneRequest) -> TuneRequest:
    """``InvalidJob`` (422) for what ``genrec tune`` refuses before reading data."""
    if request.models is not None and not request.models:
        raise InvalidJob("models is empty; give model names or leave it out for every model")
    try:
        check_settings(request.search_settings())
    except TuningError as exc:
        message = str(exc)
        for option, name in _FIELD_NAMES.items():
            message = message.replace(option, name)
        raise InvalidJob(message) from None
    return request


def enqueue_tune(
    sessions: sessionmaker[Session],
    request: TuneRequest,
    trigger: Trigger = "api",
    dedupe_key: str | None = None,
    now: datetime | None = None,
    unless_active: bool = False,
) -> RetrainJob:
    """Record a queued tune job (durable once this returns); validated first.

    ``unless_active`` (the admin API): while a tune job of the same request (every field
    of ``TuneRequest``, as JSON: ``models`` in the same order) is queued or running,
    record nothing and raise ``DuplicateJob`` naming it, under the lock retrain requests
    take (``lifecycle.record_job``), so two identical requests at once queue one job.
    """
    validate_tune(request)
    new = repo.NewJob(
        kind=TUNE,
        model=TUNE,
        params=request.to_params(),
        data="log",
        # The gate is always decided; "never" records that the request did not ask to promote.
        promote="auto" if request.promote else "never",
        trigger=trigger,
        max_attempts=DEFAULT_MAX_ATTEMPTS,
        dedupe_key=dedupe_key,
    )
    return record_job(sessions, new, now, unless_active=unless_active)


def schedule_tune(
    sessions: sessionmaker[Session],
    every_s: float,
    budget_minutes: float,
    now: datetime | None = None,
) -> RetrainJob | None:
    """Enqueue a tune job (top-k, every model, gated promotion) when the newest one is
    ``every_s`` old; like ``schedule_periodic``, the unique ``dedupe_key`` (period slot)
    keeps exactly one of the inserts that many workers make for a slot, and a slot
    whose identical job is still queued or running is skipped (two searches of the same
    log at once would split the machine between them for one answer)."""
    now = now or utcnow()
    with session_scope(sessions) as session:
        last = repo.latest_job_created_at(session, TUNE)
    if last is not None and (now - last).total_seconds() < every_s:
        return None
    slot = int(now.timestamp() // every_s)
    try:
        job = enqueue_tune(
            sessions,
            TuneRequest(budget_minutes=budget_minutes, promote=True),
            trigger="schedule",
            dedupe_key=f"schedule:{TUNE}:{slot}",
            now=now,
            unless_active=True,
        )
    except IntegrityError:
        return None  # another worker scheduled this slot first
    except DuplicateJob as twin:
        log_skip_once("periodic tune", twin)
        return None
    log.info("scheduled periodic tune job %d", job.id)
    return job
