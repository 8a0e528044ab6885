"""Request and response bodies of the experiments admin API (``/admin/experiments``).

The rules are in ``app/experiments``; these are the wire shapes (docs/experiments.md).
Fields may be added, never renamed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from app.core.config import MIN_MIXING_SD, at_least_a_second
from app.schemas_fields import Int64, JsonSchemaBounds, ModelName, Number, one_error

#: Experiment and variant names: they appear in URLs and Prometheus labels.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
VersionRef = Annotated[
    Annotated[str, Field(pattern=r"^[0-9]{1,32}$")] | Int64,
    one_error("must be a version number: an integer or a string of digits"),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VariantIn(_Strict):
    name: Name = Field(description="variant name (letters, digits, . _ -)")
    model: ModelName = Field(description="a model in the store")
    version: VersionRef | None = Field(
        None, description="a version number; none = the model's production version when served"
    )
    weight: Number = Field(description="share of traffic, relative to the other weights (>= 0)")


class ExperimentIn(_Strict):
    """``POST /admin/experiments``: the first variant is control unless ``control`` names one."""

    name: Name = Field(description="unique experiment name (letters, digits, . _ -)")
    variants: list[VariantIn] = Field(min_length=2, max_length=20)
    control: Name | None = Field(None, description="the control variant's name; default: the first")
    # The bound inside the Annotated, beside JsonSchemaBounds: on a Number with a validator
    # pydantic writes it as "le", which JSON Schema does not know.
    window_minutes: (
        Annotated[
            Number,
            AfterValidator(at_least_a_second),
            Field(le=60 * 24 * 30),
            JsonSchemaBounds(),
        ]
        | None
    ) = Field(
        None,
        description="an attributed event counts when it comes at most this long after its "
        "list; default GENREC_ATTRIBUTION_WINDOW_MINUTES (30 if that is 0)",
    )
    mixing_sd: Number | None = Field(
        None,
        ge=MIN_MIXING_SD,
        le=1,
        description="standard deviation of the mSPRT's normal mixing distribution over the CTR "
        "difference (about the smallest difference worth finding); default "
        "GENREC_EXPERIMENT_MIXING_SD",
    )


class LatencyOut(BaseModel):
    p50: float | None
    p99: float | None


class _RateComparison(BaseModel):
    """What the CTR's comparison with control and the conversion rate's have alike:
    one always-valid test, Bonferroni over the variants (``app.experiments.stats``)."""

    ci95: list[float] | None = Field(
        description="always-valid 95% confidence interval of the difference, simultaneous "
        "over the comparisons (each at 5% / comparisons); [-1, 1] before there is evidence, "
        "null while either side has served no item"
    )
    p_value: float = Field(description="always-valid p-value (valid however often it is read)")
    p_value_adjusted: float = Field(
        description="p_value adjusted for the comparisons (Bonferroni: min(1, p_value * "
        "comparisons))"
    )
    comparisons: int = Field(description="variants compared with control (weight > 0)")
    significant: bool = Field(description="p_value_adjusted < 0.05")
    method: str


class ConversionComparisonOut(_RateComparison):
    """The conversion rate's comparison with control: the CTR's test on another rate."""

    conversion_rate_diff: float | None = Field(
        description="variant conversion_rate - control conversion_rate; null while either "
        "has served no item"
    )


class ComparisonOut(_RateComparison):
    ctr_diff: float | None = Field(
        description="variant CTR - control CTR; null while either has served no item"
    )
    conversion: ConversionComparisonOut | None = Field(
        None,
        description="the same always-valid comparison of the conversion rate (per user, "
        "Bonferroni over the variants); a separate test from the CTR's",
    )


class VariantOut(BaseModel):
    name: str
    model: str
    version: str | None = Field(
        description="the pinned version, else the version that served most of its lists "
        "(before any: the production version now)"
    )
    pinned: bool = Field(description="true when the definition names the version")
    weight: float
    users: int
    impressions: int
    items_served: int
    clicks: int
    conversions: int
    ctr: float = Field(description="clicks on served items / items served")
    list_ctr: float = Field(description="lists with at least one click / lists")
    conversion_rate: float = Field(description="conversions / items served")
    mrr: float = Field(description="mean over lists of 1 / position of the first clicked item")
    latency_ms: LatencyOut
    served_versions: dict[str, int] = Field(description="lists served per model version")
    vs_control: ComparisonOut | None = None


class SrmOut(BaseModel):
    p_value: float = Field(
        description="users per variant against the weights' split (docs/experiments.md)"
    )
    ok: bool = Field(description="p_value >= 0.001 (below: the split is broken; distrust results)")


class ExperimentOut(BaseModel):
    name: str
    status: Literal["running", "stopped"]
    control: str
    window_minutes: float
    mixing_sd: float
    created_at: datetime
    stopped_at: datetime | None
    variants: list[VariantOut]
    srm: SrmOut


class ExperimentSummary(BaseModel):
    """An experiment's definition (the list view; results at ``GET .../{name}``)."""

    name: str
    status: Literal["running", "stopped"]
    control: str
    variants: list[VariantIn]
    window_minutes: float
    mixing_sd: float
    created_at: datetime
    stopped_at: datetime | None


class ExperimentList(BaseModel):
    experiments: list[ExperimentSummary]
