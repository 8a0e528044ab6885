"""Request and response bodies of the admin API (``/admin``; pydantic models only).

Jobs and alias moves are described in ``app/retrain/lifecycle.py`` and the
store; these are their wire shapes. Fields may be added, never renamed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.schemas_fields import Int64, Scalar, Text, one_error

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

    model: Text = Field(min_length=1, max_length=128, description="registered model name")
    params: dict[Text, ParamValue] = Field(
        default_factory=dict, description='hyper-parameter overrides, e.g. {"epochs": 50}'
    )
    data: Literal["log", "log+base"] = Field(
        "log+base",
        description="the interaction log, or the production version's base data set + the log",
    )
    promote: Literal["auto", "always", "never"] = Field(
        "auto", description="auto: only if not worse than production on the same held-out slice"
    )


class RetrainAccepted(BaseModel):
    job_id: int
    status: str


class JobOut(BaseModel):
    """A retrain job as the database has it now."""

    id: int
    model: str
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
        description="phase; epoch of epochs; metric and its current validation value"
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
    jobs: list[JobOut]


class VersionOut(BaseModel):
    version: str
    created_at: str
    aliases: list[str]
    metrics: dict[str, float]
    data: dict[str, Any]
    hyper_parameters: dict[str, Any]
    training: dict[str, Any]


class ModelOut(BaseModel):
    name: str
    aliases: dict[str, str]
    versions: list[VersionOut] = Field(description="newest first")


class ModelList(BaseModel):
    models: list[ModelOut]


class PromoteIn(_Strict):
    version: Annotated[
        Annotated[Text, Field(min_length=1, max_length=32)] | Int64,
        one_error("must be a version number: an integer or a string of 1-32 characters"),
    ] = Field(description="the version number to point production at")


class AliasMoved(BaseModel):
    model: str
    alias: str
    version: str
    previous: str | None
