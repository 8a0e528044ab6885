"""Business logic of the read endpoints: state -> score -> mask -> top-k.

Routes parse HTTP and call one method here; everything that decides what the
answer is (which version, fold-in or fallback, what is masked, which errors)
lives in this module, so it is testable without HTTP and identical across
routes. Masking happens on the full score vector before ``torch.topk``; no
over-fetching, so a user can never get fewer than k items while k unseen
items exist. Every list job carries the model's mask of the items removed
from the catalog (``app.serving.removed``), which the batcher applies with
the job's other masks. (A version served from an approximate-retrieval index masks its
candidates instead and falls back to this when they run short:
``app.serving.retrieval``.)

The two ranking endpoints are coroutines: the blocking part (log read, cache,
fold-in) runs in the thread pool, then the request joins its model's
micro-batch (``app.serving.batcher``) for scoring, masking and top-k.

It runs past 400 lines because the checks and masking helpers below are the
endpoints' rules; split out, a route's answer would be decided in two places.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from starlette.concurrency import run_in_threadpool

from app.core.cache import StateCache
from app.core.config import Settings
from app.core.errors import ApiError
from app.core.metrics import Metrics
from app.experiments.assignment import Assignment, ExperimentRegistry
from app.rules import AttributeIndex, ListRules, RuleCompiler, RuleError, RulePlan
from app.rules.request import rules_from_query
from app.schemas import (
    MAX_LIST,
    MAX_RECENTLY_SHOWN,
    AdHocRecommendationRequest,
    PredictedRating,
    PredictionResponse,
    RecommendationResponse,
    ScoredItem,
    SimilarItemsResponse,
)
from app.schemas_fields import id_problem
from app.serving.batcher import (
    BatcherClosed,
    Batchers,
    Ranked,
    RankJob,
)
from app.serving.holder import ModelHolder, ModelUnavailable, UnknownModel
from app.serving.impressions import ImpressionRecorder
from app.serving.interactions import IMPLICIT_RANGE
from app.serving.loaded import LoadedModel
from app.serving.removed import RemovedItems
from app.serving.state import (
    LogReader,
    UserContext,
    ad_hoc_events,
    user_contexts,
)
from app.serving.titles import CatalogTitles


@dataclass(frozen=True)
class Filters:
    """Request-level item filters, as external ids."""

    exclude_seen: bool = True
    exclude: Sequence[str] = ()
    include: Sequence[str] | None = None
    #: Drop items shown to the user in their last N impressions (0 = off).
    exclude_recently_shown: int = 0
    #: Business rules (attribute filter, boosts, diversity; ``app.rules``).
    rules: ListRules = field(default_factory=ListRules)


class Recommender:
    """Answers recommendation, prediction and similar-item requests."""

    def __init__(
        self,
        holder: ModelHolder,
        cache: StateCache,
        logs: LogReader,
        settings: Settings,
        metrics: Metrics,
        impressions: ImpressionRecorder,
        rules: RuleCompiler | None = None,
        experiments: ExperimentRegistry | None = None,
        removed: RemovedItems | None = None,
        titles: CatalogTitles | None = None,
    ) -> None:
        self.holder = holder
        #: Items removed from the catalog, fed by the catalog sync: in no list.
        self.removed = removed if removed is not None else RemovedItems()
        #: The catalog's titles, fed by the catalog sync: they win over the model's.
        self.titles = titles if titles is not None else CatalogTitles()
        self.rules = rules if rules is not None else RuleCompiler(AttributeIndex())
        self.experiments = experiments
        self.impressions = impressions
        self.cache = cache
        self.logs = logs
        self.settings = settings
        self.metrics = metrics
        self.batchers = Batchers(
            metrics,
            settings.batch_max,
            settings.batch_wait_ms / 1000.0,
            holder,
            resolve=self._resolve,
            search_threads=settings.faiss_threads,
        )

    def _resolve(self, model: LoadedModel, user_ids: list[str]) -> list[UserContext]:
        """The batcher's resolver: contexts of a batch's users (scoring thread); with their
        mean ratings for a rating model (the baseline of a prediction)."""
        return user_contexts(
            model, user_ids, self.logs, self.cache, with_mean=model.predicts_ratings
        )

    # -- endpoints --------------------------------------------------------------------

    async def for_user(
        self, user_id: str, k: int, model_name: str | None, filters: Filters
    ) -> RecommendationResponse:
        """Top-k for a (possibly unknown) user id; popularity fallback when nothing is known."""
        started = time.perf_counter()
        self.check_id(user_id, "user_id")
        self.check_k(k)
        self.check_filters(filters)
        model, assignment = await self._model_for(model_name, user_id)
        plan = await self.rule_plan_async(model, filters.rules)
        exclude = await self._with_recently_shown(user_id, filters)
        job = RankJob(
            state=None,
            banned=_banned(model, (), exclude),
            allowed=_allowed(model, filters.include),
            k=k,
            user_id=user_id,
            exclude_seen=filters.exclude_seen,
            rules=plan,
            removed=self.removed.mask(model),
        )
        ranked = await self._rank(model, job)
        assert ranked.context is not None  # the batch resolved this job's user
        response = self._answer(
            model, ranked, ranked.context, user_id, "user", k, assignment, started
        )
        response.unknown_items = _unknown(model, filters.include) or None
        return response

    async def for_history(self, request: AdHocRecommendationRequest) -> RecommendationResponse:
        """Top-k for an anonymous history (fold-in; unknown items listed, not fatal)."""
        started = time.perf_counter()
        self.check_k(request.k)
        filters = Filters(
            request.exclude_seen,
            request.exclude,
            request.include,
            request.exclude_recently_shown,
            request.rules.to_rules() if request.rules is not None else ListRules(),
        )
        self.check_recently_shown(filters.exclude_recently_shown)
        if filters.exclude_recently_shown and request.user_id is None:
            raise ApiError(
                422,
                "invalid_request",
                "exclude_recently_shown needs user_id: whose impressions to look at",
            )
        if request.user_id is not None:
            self.check_id(request.user_id, "user_id")
        # The experiment unit: the user, else the session. The impression records the two
        # apart: a session id is not a user id, though it may be the same string.
        unit = request.user_id if request.user_id is not None else request.session_id
        if request.session_id is not None:
            self.check_id(request.session_id, "session_id")
        model, assignment = await self._model_for(request.model, unit)
        history = [(entry.item_id, entry.rating) for entry in request.history]
        check_ratings(model, [rating for _, rating in history], "history")
        events, unknown = ad_hoc_events(model, history)
        exclude = filters.exclude
        if request.user_id is not None and filters.exclude_recently_shown:
            exclude = await self._with_recently_shown(request.user_id, filters)
        job = RankJob(  # the batch folds the history in with its other requests'
            state=None,
            banned=_banned(model, (), exclude),
            allowed=_allowed(model, filters.include),
            k=request.k,
            exclude_seen=filters.exclude_seen,
            rules=await self.rule_plan_async(model, filters.rules),
            events=events,
            removed=self.removed.mask(model),
        )
        ranked = await self._rank(model, job)
        assert ranked.context is not None  # the batch folded this job's history in
        response = self._answer(
            model,
            ranked,
            ranked.context,
            request.user_id,
            "ad_hoc",
            request.k,
            assignment,
            started,
            session_id=request.session_id,
        )
        response.unknown_items = unknown + [
            i for i in _unknown(model, filters.include) if i not in unknown
        ]
        return response

    async def predict(
        self, user_id: str, item_ids: Sequence[str], model_name: str | None
    ) -> PredictionResponse:
        """Predicted ratings of ``item_ids`` for ``user_id`` (rating models only).

        What the model cannot predict gets a documented baseline, flagged per item
        ``fallback``, so one new item never fails a page of candidates: an item it
        does not know (a text-aware model already knows catalog items, from their
        text) gets the user's mean rating; a user with no ratings (unknown, nothing
        rated logged) gets the version's training mean for every item. Unknown item
        ids are listed in ``unknown_items``, as for ad-hoc histories.
        """
        self.check_id(user_id, "user_id")
        if len(item_ids) > self.settings.max_k:
            raise ApiError(
                422,
                "too_many_items",
                f"item_ids has {len(item_ids)} ids; at most max_k={self.settings.max_k} per request",
            )
        model = await self.model_async(model_name)
        if not model.predicts_ratings:
            raise ApiError(
                422,
                "not_a_rating_model",
                f"model '{model.name}' ranks items but does not predict ratings; "
                "use /v1/users/{user_id}/recommendations, or name a rating model",
            )
        known = [i for i in item_ids if i in model.item_index]
        job = RankJob(  # joins the model's micro-batch: one log query, one cache round trip
            state=None,
            banned=_NOTHING,
            allowed=None,
            k=0,
            user_id=user_id,
            predict=np.fromiter((model.item_index[i] for i in known), np.int64, len(known)),
        )
        rated = await self._rank(model, job)
        context = rated.context
        assert context is not None  # the batch resolved this job's user
        if context.degraded:
            self.metrics.degraded.labels(endpoint="predictions").inc()
        # No scores: a user with no ratings (no state), every item gets the baseline.
        predicted = (
            dict(zip(known, rated.scores.tolist(), strict=False)) if rated.scores.size else {}
        )
        baseline = prediction_baseline(model, context)
        unknown = [i for i in dict.fromkeys(item_ids) if i not in model.item_index]
        n_baseline = sum(1 for i in item_ids if i not in predicted)
        if n_baseline:
            self.metrics.prediction_fallbacks.inc(n_baseline)
        return PredictionResponse(
            user_id=user_id,
            model=model.name,
            version=model.version,
            degraded=context.degraded,
            predictions=[
                PredictedRating(
                    item_id=i,
                    rating=float(predicted.get(i, baseline)),
                    from_text=i in predicted and model.item_index[i] in model.from_text,
                    fallback=i not in predicted,
                )
                for i in item_ids
            ],
            unknown_items=unknown or None,
        )

    async def similar(
        self, item_id: str, k: int, model_name: str | None, rules: ListRules | None = None
    ) -> SimilarItemsResponse:
        """k most similar items by cosine over the model's item vectors (or co-occurrence),
        under the request's business rules (``app.rules``), like every list. Joins the
        model's micro-batch (``batcher.rank_similar``: the index when the server uses one)."""
        self.check_id(item_id, "item_id")
        self.check_k(k)
        model = await self.model_async(model_name)
        plan = await self.rule_plan_async(model, rules or ListRules())
        index = model.item_index.get(item_id)
        if index is None:
            raise ApiError(
                404,
                "unknown_item",
                f"item '{item_id}' is unknown to model '{model.name}' version {model.version}",
            )
        # Not the item itself. A removed item still has a similar list (alternatives to a
        # discontinued product); like every list, it holds no removed item.
        banned = np.array([index], dtype=np.int64)
        removed = self.removed.mask(model)
        job = RankJob(None, banned, None, k, rules=plan, similar_to=index, removed=removed)
        ranked = await self._rank(model, job)
        items = [ScoredItem(**fields) for fields in scored_items(model, ranked, self.titles)]
        return SimilarItemsResponse(
            item_id=item_id,
            title=self.titles.get(item_id, model.titles[index]),
            model=model.name,
            version=model.version,
            items=items,
            short_by=self._short_by("similar", k, len(items)),
            boost_unit=ranked.boost_unit,
            recommendation_id=self.impressions.record(
                None, "similar", [i.item_id for i in items], model.name, model.version
            ),
        )

    # -- shared pieces ----------------------------------------------------------------

    def model(self, name: str | None) -> LoadedModel:
        """The loaded version to use; 404 for an unknown model, 503 when it cannot be served."""
        try:
            return self.holder.get(name)
        except UnknownModel as exc:
            raise ApiError(
                404, "unknown_model", str(exc), details={"available": exc.available}
            ) from exc
        except ModelUnavailable as exc:
            raise ApiError(503, "model_unavailable", str(exc)) from exc

    async def _model_for(
        self, name: str | None, unit_id: str | None
    ) -> tuple[LoadedModel, Assignment | None]:
        """The model to serve and the request's experiment variant.

        A request that names no model, while an experiment runs and with a user or
        session id, gets its variant's model (``app.experiments.assignment``); a
        variant that cannot be served right now falls back to the default model,
        outside the experiment (counted in ``genrec_experiment_fallbacks``).
        """
        assignment = None
        if name is None and self.experiments is not None:
            assignment = self.experiments.assign(unit_id)
        if assignment is None:
            return await self.model_async(name), None
        try:
            if assignment.version is None:
                return await self.model_async(assignment.model), assignment
            pinned = self.holder.get_version
            return await run_in_threadpool(pinned, assignment.model, assignment.version), assignment
        except (ApiError, UnknownModel, ModelUnavailable):
            self.metrics.experiment_fallbacks.labels(
                experiment=assignment.experiment, variant=assignment.variant
            ).inc()
            return await self.model_async(None), None

    async def model_async(self, name: str | None) -> LoadedModel:
        """``model`` without blocking the event loop: a first load runs in the thread pool."""
        loaded = self.holder.peek(name or self.holder.default_model)
        return loaded if loaded is not None else await run_in_threadpool(self.model, name)

    async def close(self) -> None:
        """Score what is queued and stop the batchers (graceful shutdown)."""
        await self.batchers.close()

    def check_k(self, k: int) -> None:
        if not 1 <= k <= self.settings.max_k:
            raise ApiError(
                422, "invalid_k", f"k must be between 1 and {self.settings.max_k}, got {k}"
            )

    async def rule_plan_async(self, model: LoadedModel, rules: ListRules) -> RulePlan | None:
        """``rule_plan`` without blocking the event loop: a cached plan is a lookup here, a
        compile (a pass over the catalog: 2 s at 50k items after a catalog change, which
        stalled every request, /healthz included) runs in the thread pool."""
        if not rules:
            return None
        cached = self.rules.cached(model, rules)
        if cached is not None:
            return cached
        return await run_in_threadpool(self.rule_plan, model, rules)

    def rule_plan(self, model: LoadedModel, rules: ListRules) -> RulePlan | None:
        """``rules`` compiled for ``model`` (cached); a 422 naming what does not fit the catalog."""
        if not rules:
            return None
        try:
            return self.rules.plan(model, rules)
        except RuleError as exc:
            raise ApiError(422, "invalid_rule", str(exc)) from exc

    def _short_by(self, endpoint: str, k: int, returned: int) -> int | None:
        """How many items fewer than k the list has (None when it has k); counted."""
        if returned >= k:
            return None
        self.metrics.short_lists.labels(endpoint=endpoint).inc()
        return k - returned

    def check_recently_shown(self, last: int) -> None:
        if not 0 <= last <= MAX_RECENTLY_SHOWN:
            raise ApiError(
                422,
                "invalid_request",
                f"exclude_recently_shown must be between 0 and {MAX_RECENTLY_SHOWN}, got {last}",
            )

    async def _with_recently_shown(self, user_id: str, filters: Filters) -> Sequence[str]:
        """``filters.exclude`` plus the items of the user's last N impressions (when N > 0)."""
        if not filters.exclude_recently_shown:
            return filters.exclude
        shown = await run_in_threadpool(
            self.impressions.recent_items, user_id, filters.exclude_recently_shown
        )
        return [*filters.exclude, *sorted(shown)]

    def check_filters(self, filters: Filters) -> None:
        """``exclude`` / ``include`` query lists: bounded length, every id a valid id."""
        self.check_recently_shown(filters.exclude_recently_shown)
        for what, ids in (("exclude", filters.exclude), ("include", filters.include or ())):
            if len(ids) > MAX_LIST:
                raise ApiError(
                    422, "too_many_items", f"{what} has {len(ids)} ids; the limit is {MAX_LIST}"
                )
            for n, item_id in enumerate(ids):
                self.check_id(item_id, f"{what}[{n}]")

    def check_id(self, value: str, what: str) -> None:
        if reason := id_problem(value, what, self.settings.max_id_length):
            raise ApiError(422, "invalid_id", reason)

    async def _rank(self, model: LoadedModel, job: RankJob) -> Ranked:
        """Join the model's micro-batch (``app.serving.batcher``) and wait for the result."""
        try:
            return await self.batchers.for_model(model).rank(job)
        except BatcherClosed as exc:
            raise ApiError(503, "shutting_down", f"{exc}; retry on another replica") from exc

    def _answer(
        self,
        model: LoadedModel,
        ranked: Ranked,
        context: UserContext,
        user_id: str | None,
        kind: str,
        k: int,
        assignment: Assignment | None = None,
        started: float | None = None,
        session_id: str | None = None,
    ) -> RecommendationResponse:
        """The response, with the ``recommendation_id`` of its (queued) impression, and
        the experiment and variant when the request was assigned one."""
        if context.state is None:
            self.metrics.fallbacks.inc()
        if context.degraded:
            self.metrics.degraded.labels(endpoint="recommendations").inc()
        items = scored_items(model, ranked, self.titles)
        shown = [item["item_id"] for item in items]
        latency_ms = (time.perf_counter() - started) * 1000 if started is not None else None
        experiment = variant = None
        if assignment is not None:
            experiment, variant = assignment.experiment, assignment.variant
            self.metrics.count_experiment_impression(
                experiment, variant, model.name, model.version, len(shown), latency_ms
            )
        return RecommendationResponse(
            user_id=user_id,
            model=model.name,
            version=model.version,
            fallback=context.state is None,
            degraded=context.degraded,
            items=items,
            short_by=self._short_by(kind, k, len(items)),
            boost_unit=ranked.boost_unit,
            recommendation_id=self.impressions.record(
                user_id,
                kind,
                shown,
                model.name,
                model.version,
                experiment=experiment,
                variant=variant,
                latency_ms=latency_ms,
                session_id=session_id,
            ),
            experiment=experiment,
            variant=variant,
        )


def query_rules(
    filters: Sequence[str] | None,
    boosts: Sequence[str] | None,
    cap: str | None,
    mmr: float | None,
) -> ListRules:
    """The rule query parameters of a GET list route; a 422 saying what is wrong."""
    try:
        return rules_from_query(filters, boosts, cap, mmr)
    except RuleError as exc:
        raise ApiError(422, "invalid_rule", str(exc)) from exc


def _unknown(model: LoadedModel, include: Sequence[str] | None) -> list[str]:
    """The ``include`` ids the model does not know, once each: an ``include`` of only
    such ids answers an empty list, and ``short_by`` alone would not say why."""
    if not include:
        return []
    return [i for i in dict.fromkeys(include) if i not in model.item_index]


def _allowed(model: LoadedModel, include: Sequence[str] | None) -> np.ndarray | None:
    """Item indices of the ``include`` list (unknown ids dropped); None = every item."""
    if include is None:
        return None
    known = {model.item_index[i] for i in include if i in model.item_index}
    return np.fromiter(sorted(known), dtype=np.int64, count=len(known))


#: The titles of a caller that has no catalog: every item keeps the model's.
_NO_TITLES = CatalogTitles()


def scored_items(
    model: LoadedModel, ranked: Ranked, titles: CatalogTitles | None = None
) -> list[dict[str, Any]]:
    """The top-k as ``ScoredItem`` fields; the response model validates them in one
    pydantic-core call instead of one ``ScoredItem`` construction per item. An item's
    title is the catalog's when ``titles`` has one (``app.serving.titles``), else the
    model's: one dict lookup per item."""
    ids, names = model.item_ids, model.titles
    title = (titles if titles is not None else _NO_TITLES).get
    return [
        {
            "item_id": (item_id := ids[i]),
            "score": v,
            "title": title(item_id, names[i]),
            "from_text": i in model.from_text,
        }
        for i, v in zip(ranked.items.tolist(), ranked.scores.tolist(), strict=True)
    ]


def check_ratings(model: LoadedModel, ratings: Sequence[float | None], where: str) -> None:
    """Ratings must lie in the artifact's range, unless it was trained on implicit data.

    A model trained on clicks carries the range [0, 1]; it folds in any positive
    value as a click, so explicit ratings are not rejected for it.
    """
    low, high = model.rating_range
    if (low, high) == IMPLICIT_RANGE:
        return
    for n, rating in enumerate(ratings):
        if rating is not None and not low <= rating <= high:
            raise ApiError(
                422,
                "rating_out_of_range",
                f"{where}[{n}].rating {rating} is outside the rating range [{low:g}, {high:g}] "
                f"of model '{model.name}' version {model.version}",
            )


def prediction_baseline(model: LoadedModel, context: UserContext) -> float:
    """The rating given where the model cannot predict one (documented in the API).

    The user's mean rating when they have any, else the version's mean training
    rating; clipped to the rating range, as the model's own predictions are.
    """
    low, high = model.rating_range
    mean = context.mean_rating if context.mean_rating is not None else model.training_mean
    return min(max(mean, low), high)


_NOTHING = np.zeros(0, dtype=np.int64)
_NOTHING.flags.writeable = False


def _banned(model: LoadedModel, seen: Iterable[int], exclude: Sequence[str]) -> np.ndarray:
    """Item indices never to return: ``seen`` plus the known ids of ``exclude``."""
    excluded = [model.item_index[i] for i in exclude if i in model.item_index]
    seen_array = np.fromiter(seen, dtype=np.int64)
    if not excluded and not seen_array.size:
        return _NOTHING  # the usual request: no exclusions beyond what the batch adds
    return np.union1d(seen_array, np.asarray(excluded, dtype=np.int64))
