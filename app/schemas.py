"""Request and response bodies of the HTTP API (pydantic models only).

Shapes follow docs/design.md "Serving"; fields may be added, never renamed. Limits
that depend on settings (``max_k``, ``max_batch``, ``max_id_length``) and on
the loaded artifact (rating range) are checked by the serving layer, which
knows them; what is checked here is what holds for every deployment.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Discriminator, Field, StrictInt, Tag

from app.rules.request import BOOST_DOC, CAP_DOC, FILTER_DOC, MMR_DOC, QueryLambda, RulesIn
from app.schemas_fields import (
    Bool,
    Id,
    IsoDateTime,
    ModelName,
    Number,
    QueryInt,
    RuleText,
    Text,
    storable,
)

Rating = Number
#: Most ids in one ``include`` / ``exclude`` list, and most entries in an ad-hoc history.
MAX_LIST = 10_000
#: Event times the log accepts (UTC): from the Unix epoch to the end of year 9998.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)


def _event_time(value: datetime) -> datetime:
    """Aware UTC (no offset = UTC) within [EARLIEST, LATEST); a clear error otherwise.

    Why: converting e.g. ``0001-01-01T00:00+01:00`` to UTC overflows ``datetime``,
    which must be a 422 naming the field, not an error deep in the database layer.
    """
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    try:
        moment = aware.astimezone(UTC)
    except OverflowError:
        moment = None
    if moment is None or not EARLIEST <= moment < LATEST:
        raise ValueError(
            f"timestamp must lie between {EARLIEST.date()} and {LATEST.date()} (UTC), "
            f"got {value.isoformat()}"
        )
    return moment


EventTime = Annotated[IsoDateTime, AfterValidator(_event_time)]
#: An interaction type (checked against the configured vocabulary by the serving layer).
EventType = Annotated[str, Field(min_length=1, max_length=32), AfterValidator(storable)]
#: A ``recommendation_id`` as a client echoes it back (ours are 36-character UUIDs).
RecommendationId = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(storable)]
#: The description of ``recommendation_id`` in every response that carries one.
RECOMMENDATION_ID = (
    "id of this response's impression; send it back with interactions on these items "
    "(recommendation_id) to attribute them to it"
)


class _Strict(BaseModel):
    """Unknown fields are refused: a typo (``itemId``) must not be dropped silently.

    Field types come from ``app.schemas_fields``: storable text, strict numbers.
    """

    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------- interactions


class InteractionIn(_Strict):
    """One event; ``timestamp`` defaults to now, ``rating`` to an implicit click."""

    user_id: Id
    item_id: Id
    rating: Rating | None = None
    timestamp: EventTime | None = Field(
        None,
        description="event time, an ISO-8601 string (no offset = UTC), 1970..9998; default: now",
    )
    type: EventType | None = Field(
        None,
        description="event type, one of the server's GENREC_EVENT_TYPES (default view, click, "
        "like, purchase, dislike); an unknown type is a 422 naming it; none = untyped "
        "(a rating, or a click when no rating is given)",
    )
    recommendation_id: RecommendationId | None = Field(
        None,
        description="the recommendation_id of the response that showed the item (explicit "
        "attribution, to a list of this user or of a session); an id that names no "
        "impression, another user's list or a list that did not show the item is accepted, "
        "logged and left unattributed; none = attributed to the latest impression that "
        "showed the item to the user within GENREC_ATTRIBUTION_WINDOW_MINUTES (positive "
        "types only)",
    )


class InteractionBatch(_Strict):
    interactions: list[InteractionIn] = Field(min_length=1)


def _interaction_kind(value: Any) -> str:
    return "batch" if isinstance(value, dict) and "interactions" in value else "single"


InteractionsBody = Annotated[
    Annotated[InteractionBatch, Tag("batch")] | Annotated[InteractionIn, Tag("single")],
    Discriminator(_interaction_kind),
]


class InteractionsAccepted(BaseModel):
    accepted: int


# --------------------------------------------------------------------------- recommendations


#: Per-item flag of items that a text-aware model scored from their catalog text.
FROM_TEXT = "true when the item has no ratings in the model: its vector comes from its catalog text"


#: Field descriptions shared by every list response.
SHORT_BY = (
    "present when the list has fewer than k items: how many fewer (the rules, filters and "
    "exclusions left fewer than k candidates)"
)
BOOST_UNIT = (
    "present when boosts applied: the spread (std) of this list's model scores that boost "
    "weights are multiplied by; listed scores include the boosts"
)


class ScoredItem(BaseModel):
    item_id: str
    score: float
    title: str | None = None
    from_text: bool = Field(False, description=FROM_TEXT)


class RecommendationResponse(BaseModel):
    """Top-k list; ``user_id`` is absent for ad-hoc histories."""

    user_id: str | None = None
    model: str
    version: str
    fallback: bool = Field(description="true when answered by popularity (nothing known)")
    degraded: bool = Field(
        False,
        description="true when answered without the interaction database (it is down): "
        "from the artifact's training history and the cached state only",
    )
    items: list[ScoredItem]
    short_by: int | None = Field(None, description=SHORT_BY)
    boost_unit: float | None = Field(None, description=BOOST_UNIT)
    unknown_items: list[str] | None = Field(
        None,
        description="item ids of the request (history, include) the model does not know (ignored)",
    )
    recommendation_id: str | None = Field(None, description=RECOMMENDATION_ID)
    experiment: str | None = Field(
        None, description="the running A/B experiment this list was served in (none: not in one)"
    )
    variant: str | None = Field(
        None, description="the experiment variant that served this list (its model and version)"
    )


#: Most recent impressions ``exclude_recently_shown`` may look back over.
MAX_RECENTLY_SHOWN = 100
EXCLUDE_RECENTLY_SHOWN = (
    f"drop items shown to this user in their last N impressions (0..{MAX_RECENTLY_SHOWN}; 0 = off)"
)


class RecommendationQuery(BaseModel):
    """Query string of ``GET /v1/users/{user_id}/recommendations`` (see ``app.api.query``).

    Id lengths and ``k``'s upper bound depend on settings and are checked by the
    serving layer, like the body limits.
    """

    k: QueryInt = Field(10, description="number of items (1..max_k)")
    model: ModelName | None = Field(None, description="model name; default model if omitted")
    exclude_seen: bool = Field(True, description="drop items the user already has")
    exclude: list[Text] | None = Field(None, description="item ids never to return")
    include: list[Text] | None = Field(None, description="rank only these item ids")
    exclude_recently_shown: QueryInt = Field(0, description=EXCLUDE_RECENTLY_SHOWN)
    filter: list[RuleText] | None = Field(None, description=FILTER_DOC)
    boost: list[RuleText] | None = Field(None, description=BOOST_DOC)
    cap: RuleText | None = Field(None, description=CAP_DOC)
    mmr: QueryLambda | None = Field(None, description=MMR_DOC)


class SimilarItemsQuery(BaseModel):
    """Query string of ``GET /v1/items/{item_id}/similar`` (see ``app.api.query``): parsed
    like the user list's, so a repeated ``k`` or ``k=5.0`` gets the same 422 on both."""

    k: QueryInt = Field(10, description="number of items (1..max_k)")
    model: ModelName | None = Field(None, description="model name; default model if omitted")
    filter: list[RuleText] | None = Field(None, description=FILTER_DOC)
    boost: list[RuleText] | None = Field(None, description=BOOST_DOC)
    cap: RuleText | None = Field(None, description=CAP_DOC)
    mmr: QueryLambda | None = Field(None, description=MMR_DOC)


class HistoryEntry(_Strict):
    item_id: Id
    rating: Rating | None = None


class AdHocRecommendationRequest(_Strict):
    """An anonymous history to fold in; nothing is logged."""

    history: list[HistoryEntry] = Field(default_factory=list, max_length=MAX_LIST)
    k: StrictInt = Field(10, description="number of items (1..max_k)")
    model: ModelName | None = None
    exclude_seen: Bool = True
    exclude: list[Id] = Field(
        default_factory=list, max_length=MAX_LIST, description="item ids never to return"
    )
    include: list[Id] | None = Field(
        None, max_length=MAX_LIST, description="rank only these item ids"
    )
    user_id: Id | None = Field(
        None,
        description="who (a user or session id) sees this list: recorded with its impression "
        "(attribution, exclude_recently_shown); nothing is logged as an interaction",
    )
    exclude_recently_shown: StrictInt = Field(
        0, description=EXCLUDE_RECENTLY_SHOWN + " (needs user_id)"
    )
    rules: RulesIn | None = Field(
        None, description="business rules: attribute filter, boosts, diversity (docs/rules.md)"
    )
    session_id: Id | None = Field(
        None,
        description="an anonymous session id: recorded with the impression as the session "
        "(not as a user), and without user_id it keeps the session in one A/B experiment "
        "variant across requests",
    )


# --------------------------------------------------------------------------- predictions


class PredictionRequest(_Strict):
    user_id: Id
    item_ids: list[Id] = Field(min_length=1, description="at most max_k ids")
    model: ModelName | None = None


#: Per-item flag of predictions the model could not make (see ``PredictionResponse``).
PREDICTION_FALLBACK = (
    "true when the model cannot predict this rating (the item is unknown to it, or the user "
    "has no ratings): the rating is the baseline instead (the user's mean rating, else the "
    "version's training mean)"
)


class PredictedRating(BaseModel):
    item_id: str
    rating: float
    from_text: bool = Field(False, description=FROM_TEXT)
    fallback: bool = Field(False, description=PREDICTION_FALLBACK)


class PredictionResponse(BaseModel):
    """Ratings in request order; one unknown item never fails the list.

    An item the model does not know (nor, for a text-aware model, the catalog) and
    every item of a user with no ratings get the baseline, flagged ``fallback``: the
    mean of the user's ratings (training row and ratings logged since), else the mean
    training rating of the version.
    """

    user_id: str
    model: str
    version: str
    degraded: bool = Field(
        False, description="true when answered without the interaction database (it is down)"
    )
    predictions: list[PredictedRating]
    unknown_items: list[str] | None = Field(
        None, description="requested items the model does not know (answered with the baseline)"
    )


# --------------------------------------------------------------------------- items


class SimilarItemsResponse(BaseModel):
    item_id: str
    title: str | None = None
    model: str
    version: str
    items: list[ScoredItem]
    short_by: int | None = Field(None, description=SHORT_BY)
    boost_unit: float | None = Field(None, description=BOOST_UNIT)
    recommendation_id: str | None = Field(None, description=RECOMMENDATION_ID)


# --------------------------------------------------------------------------- health


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    ready: bool
    degraded: bool = Field(
        False, description="true while the database is unreachable (reads degrade, writes 503)"
    )
    database: dict[str, Any] = Field(
        description="`ok`; with the admin token also `error` when it is down or unmigrated"
    )
    cache: dict[str, Any] = Field(
        description="`ok` (Redis reachable); with the admin token also `backend`"
    )
    models: dict[str, dict[str, Any]] = Field(
        description="per model `loaded`; with the admin token also `version`, `device` "
        "and the last refused version's `error`"
    )
    default_model: str
    reason: str | None = Field(
        None,
        description="why the server is not ready: which model is missing (and, with the "
        "admin token, why)",
    )


# --------------------------------------------------------------------------- errors


class Problem(BaseModel):
    field: str
    message: str


class ErrorResponse(BaseModel):
    """Every 4xx/5xx body (``app.core.errors``): a stable code and a message that says why."""

    error: str = Field(description="stable machine-readable code, e.g. invalid_request")
    message: str | None = Field(None, description="what is wrong, for humans")
    request_id: str
    problems: list[Problem] | None = Field(
        None, description="per-field validation problems (at most 20; see details)"
    )
    details: dict[str, Any] | None = Field(
        None,
        description="more about the error; a 422 with more than 20 problems gives "
        "problems_total, problems_shown, rows_total and rows (ranges of batch rows)",
    )
