"""Request and response bodies of the admin API (``/admin``; pydantic models only).

Jobs and alias moves are described in ``app/retrain/lifecycle.py`` and the
store; these are their wire shapes. Fields may be added, never renamed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.schemas_fields import MODEL_ENUM, Bool, Int64, ModelName, Number, Scalar, Text, one_error
from models_store.manifest import VERSION_PATTERN
from training.tuning.confirm import MAX_FOLDS
from training.tuning.search import MAX_BUDGET_SECONDS, MAX_SEED, MAX_TRIALS, MIN_BUDGET_SECONDS

#: A hyper-parameter value as JSON gives it (strict types; a string is the CLI's
#: ``--set`` form, parsed by the model's config).
ParamValue = Scalar


class _Strict(BaseModel):
    """Unknown fields are refused: a typo (``promte``) must not be dropped silently.

    Field types come from ``app.schemas_fields``: storable text, strict numbers.
    """

    model_config = ConfigDict(extra="forbid")


class RetrainIn(_Strict):
    """``POST /admin/retrain``: what to train, on what, and when to promote the result."""

    model: Text = Field(
        min_length=1,
        max_length=128,
        description="registered model name",
        json_schema_extra=MODEL_ENUM,
    )
    params: dict[Text, ParamValue] = Field(
        default_factory=dict,
        description='hyper-parameter overrides, e.g. {"epochs": 50}; each integer setting '
        "has a largest value (epochs and step counts 10,000, batch sizes 10,000,000, "
        "widths 65,536; see `genrec models available -v`), as for `genrec train --set`",
    )
    data: Literal["log", "log+base"] = Field(
        "log+base",
        description="the interaction log, or the production version's base data set + the log",
    )
    promote: Literal["auto", "always", "never"] = Field(
        "auto", description="auto: only if not worse than production on the same held-out slice"
    )


class TuneIn(_Strict):
    """``POST /admin/tune``: the options of ``genrec tune`` (data: the service's own log)."""

    task: Text = Field("topk", max_length=16, description="topk (rank items) or ratings")
    models: list[ModelName] | None = Field(
        None,
        max_length=64,
        description="models to search (default: every model of the task)",
        json_schema_extra={"minItems": 1},  # [] is a 422 that says to leave it out
    )
    # Schema-only minimums (json_schema_extra): training.tuning.search refuses less with
    # its own message, which says why (the shortest budget that fits one trial).
    budget_minutes: Number = Field(
        10.0,
        description="wall-clock budget of the search (0.5 to 10,080, a week; the refit "
        "comes after)",
        json_schema_extra={"minimum": MIN_BUDGET_SECONDS / 60, "maximum": MAX_BUDGET_SECONDS / 60},
    )
    trials: Int64 | None = Field(
        None,
        description="stop after this many trials (all workers; 1 to 1,000,000)",
        json_schema_extra={"minimum": 1, "maximum": MAX_TRIALS},
    )
    split: Text | None = Field(
        None, max_length=16, description="users|time for topk (default users), random for ratings"
    )
    metric: Text | None = Field(
        None, max_length=32, description="ndcg@K|recall@K (default ndcg@100) or rmse|mae"
    )
    seed: int = Field(
        0, strict=True, ge=0, le=MAX_SEED, description="seed of the split and the sampler"
    )
    promote: Bool = Field(
        False, description="point production at the winner if it passes the evaluation gate"
    )
    confirm_folds: Int64 | None = Field(
        None,
        description="validation splits each of the 3 finalists is scored on at the end of "
        "the budget, best mean wins (1 to 20; default 3 for budgets of 5 min or more, "
        "else 1: off)",
        json_schema_extra={"minimum": 1, "maximum": MAX_FOLDS},
    )


class RetrainAccepted(BaseModel):
    job_id: int
    status: str


class JobOut(BaseModel):
    """A retrain or tune job as the database has it now."""

    id: int
    kind: Literal["retrain", "tune"] = Field(
        description="retrain (POST /admin/retrain) or tune (POST /admin/tune)"
    )
    model: str = Field(description='the model retrained; "tune" for a tune job')
    params: dict[str, Any]
    data: str
    promote: str
    trigger: str = Field(description="api (POST /admin/retrain) or schedule (RETRAIN_EVERY)")
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    attempts: int
    max_attempts: int
    worker_id: str | None
    lease_expires_at: datetime | None
    progress: dict[str, Any] | None = Field(
        description="phase; epoch of epochs; metric and its current validation value; "
        "tune: trials_done, trials_running, workers, best so far, seconds_left, dropped "
        "(each model out of the search because it cannot train on the data: why)"
    )
    search_until: datetime | None = Field(
        None, description="tune: when its search ends (other workers join it until then)"
    )
    result: dict[str, Any] | None = Field(
        None,
        description="tune: the winner's model and version, the leaderboard and report "
        "(its dropped: the models out of the search and why)",
    )
    log_tail: list[str] = Field(description="the job's last log lines, oldest first")
    result_version: str | None
    promoted: bool | None
    gate: dict[str, Any] | None = Field(
        description="the candidate-vs-production comparison that decided promotion"
    )
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime


class JobList(BaseModel):
    """One page of ``GET /admin/jobs``, newest first."""

    jobs: list[JobOut]
    next_cursor: str | None = Field(
        None,
        description="pass as cursor (same filters) for the next, older page; null on the last page",
    )


class VersionOut(BaseModel):
    version: str
    created_at: str
    aliases: list[str]
    metrics: dict[str, float]
    data: dict[str, Any]
    hyper_parameters: dict[str, Any]
    training: dict[str, Any]
    retrieval: dict[str, Any] = Field(
        default_factory=dict,
        description="the approximate-retrieval indexes' parameters (the manifest's retrieval "
        "section; empty for a model scored exactly): calibration is the recall measured on "
        "sampled training users at build time, which GENREC_ANN=auto reads",
    )


class ModelOut(BaseModel):
    name: str
    aliases: dict[str, str]
    versions: list[VersionOut] = Field(description="newest first")
    unreadable: dict[str, str] = Field(
        default_factory=dict,
        description="versions whose manifest cannot be read, with why (not in versions)",
    )
    aliases_unreadable: str | None = Field(
        None,
        description="why the model's alias files cannot be read (aliases is then empty); "
        "the other models are listed all the same",
    )


class ModelList(BaseModel):
    models: list[ModelOut]


#: Schema only: what ``models_store.manifest.validate_version`` accepts, which answers
#: anything else with its own message ("a version is a positive integer").
_VERSION_TEXT = {"pattern": f"^{VERSION_PATTERN}$"}
_VERSION_NUMBER = {"minimum": 1}


class PromoteIn(_Strict):
    version: Annotated[
        Annotated[Text, Field(min_length=1, max_length=32, json_schema_extra=_VERSION_TEXT)]
        | Annotated[Int64, Field(json_schema_extra=_VERSION_NUMBER)],
        one_error("must be a version number: an integer or a string of 1-32 characters"),
    ] = Field(description="the version number to point production at")


class RollbackIn(_Strict):
    """``POST /admin/models/{name}/rollback``'s optional body (no body: roll back
    whatever production is now, as before)."""

    from_version: (
        Annotated[
            Annotated[Text, Field(min_length=1, max_length=32, json_schema_extra=_VERSION_TEXT)]
            | Annotated[Int64, Field(json_schema_extra=_VERSION_NUMBER)],
            one_error("must be a version number: an integer or a string of 1-32 characters"),
        ]
        | None
    ) = Field(
        default=None,
        description="roll back only if production still points at this version (else 409 "
        "alias_changed): a rollback sent twice moves production once",
    )


class AliasMoved(BaseModel):
    model: str
    alias: str
    version: str
    previous: str | None
    unreadable_kept_as: str | None = Field(
        default=None,
        description="promote only: the alias file did not parse (a hand edit, a disk fault) "
        "and was replaced, with no rollback history (previous is null); its bytes are kept "
        "under this name, relative to the model store",
    )
