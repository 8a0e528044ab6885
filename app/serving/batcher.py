"""Micro-batching: concurrent ranking requests for one model version, scored together.

Why: scoring one user is a (1, D) x (D, I) product plus a top-k over I items;
scoring B users at once is one (B, D) x (D, I) product whose cost grows far
more slowly than B (on a GPU it is nearly flat), and the per-call overhead
(dispatch, kernel launches, device transfers) is paid once per batch instead
of once per request. So throughput grows with load instead of collapsing.

How: each served model object has a ``ScoreBatcher``. A request puts a
``RankJob`` (its user state, masks and k) and awaits a future. A loop on the
event loop collects jobs for at most ``wait_s`` after the oldest one arrived,
or until ``max_batch`` are waiting, then hands them to the batcher's own
scoring thread, which runs ``process_batch``:

    users' logs (one query) + cached states (one round trip) + fold-in (one
    ``user_state`` call for the misses, one for the batch's ad-hoc histories)
    -> states (B, D) -> scores (B, I)
    -> business rules (``app.rules.apply``: filter masks, boosts) -> masks (B, I)
    -> torch.topk -> per-job top-k (diversity re-ranks: ``app.rules.diversity``)

and the results are fanned back out to the futures. Prediction jobs
(``RankJob.predict``, ``POST /v1/predictions``) join the same batches: their
users are resolved with the others', then their items are rated instead of ranked. Similar
lists (``RankJob.similar_to``, ``GET /v1/items/{id}/similar``) join them as well: the
batch's items' cosine rows are one product (``rank_similar``). While one batch is being
scored the next one fills, so batches get larger exactly when load is high.
Masks (seen items, ``exclude``, ``include``, items removed from the catalog) are
applied to the scores before top-k; nothing is over-fetched.

A model version with an approximate-retrieval index (``LoadedModel.ann``,
``app.serving.retrieval``) replaces the full product by candidate generation:
the index proposes candidates, they are re-scored exactly and masked by
``candidate_mask`` (the same rules as ``_mask``), and a job left with fewer
than k candidates is ranked by the exact path above.

On shutdown ``close`` stops accepting jobs and scores everything still queued
before returning (the lifespan awaits it after uvicorn drained the requests).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import faiss
import numpy as np
import torch
from torch import Tensor

from app.core.metrics import Metrics
from app.rules.apply import apply_rules
from app.rules.compile import RulePlan
from app.rules.diversity import diversify
from app.serving.loaded import LoadedModel
from app.serving.removed import RemovedMask
from app.serving.similarity import similar_queries, similarity_view
from app.serving.state import UserContext, ad_hoc_contexts

log = logging.getLogger(__name__)


class BatcherClosed(RuntimeError):
    """The batcher is shutting down and takes no new jobs."""


@dataclass(frozen=True)
class RankJob:
    """One request's share of a batch.

    Either ``state`` is given, or ``user_id`` names a user whose state and seen
    items the batch resolves together with the others' (one log query, one
    cache round trip, one ``user_state`` call per batch), or ``events`` is an
    anonymous history the batch folds in together with the others' (one
    ``user_state`` call; computing it per request in the thread pool made an
    ad-hoc request cost about twice a known user's, docs/performance.md).
    """

    state: Tensor | None  # (1, D) user state; None = popularity fallback row
    banned: np.ndarray  # (S,) int64 item indices never to return (seen, exclude)
    allowed: np.ndarray | None  # (C,) int64: rank only these (include); None = all items
    k: int
    user_id: str | None = None  # resolve state + seen items in the batch
    exclude_seen: bool = True  # with user_id: also ban the user's seen items
    rules: RulePlan | None = None  # compiled business rules (filter mask, boosts, diversity)
    # A prediction job (with ``user_id``): rate these item indices instead of ranking; the
    # result's ``items`` are they, ``scores`` the ratings (empty when the user has no state).
    predict: np.ndarray | None = None
    #: An ad-hoc history, (item index, rating) pairs (``app.serving.state.ad_hoc_events``):
    #: the batch folds it in; its seen items are banned when ``exclude_seen``.
    events: Sequence[tuple[int, float | None]] | None = None
    #: A similar list (``GET /v1/items/{id}/similar``): rank items by their cosine to this
    #: item index instead of a user's scores (``rank_similar``); ``state`` is unused.
    similar_to: int | None = None
    #: Items removed from the catalog (``app.serving.removed``), never returned: shared by
    #: every list of the model, so the batch's mask takes it as one broadcast row.
    removed: RemovedMask | None = None


@dataclass(frozen=True)
class Ranked:
    """Top-k of one job, best first; shorter than k when fewer items are left unmasked."""

    items: np.ndarray  # (k',) int64 item indices
    scores: np.ndarray  # (k',) float32
    context: UserContext | None = None  # what the batch resolved for a ``user_id`` job
    boost_unit: float | None = None  # the score spread boosts were scaled by (app.rules.apply)
    #: How it was ranked: "exact", "ann" (index candidates re-scored exactly), or the
    #: reason an indexed model fell back to exact scoring (counted in the metrics).
    retrieval: str = "exact"


#: Resolves the users of a batch: (model, user ids) -> one context per id, in order.
Resolver = Callable[[LoadedModel, list[str]], list[UserContext]]


def process_batch(
    model: LoadedModel, jobs: Sequence[RankJob], resolve: Resolver | None
) -> list[Ranked]:
    """Rank the batch's similar lists (``rank_similar``) and its users' and histories'
    jobs (``process_lists``), each kind in one product; results in the jobs' order."""
    similar = [b for b, job in enumerate(jobs) if job.similar_to is not None]
    if not similar:
        return process_lists(model, jobs, resolve)
    results: list[Ranked | None] = [None] * len(jobs)
    for b, r in zip(similar, rank_similar(model, [jobs[b] for b in similar]), strict=True):
        results[b] = r
    lists = [b for b, job in enumerate(jobs) if job.similar_to is None]
    if lists:
        ranked = process_lists(model, [jobs[b] for b in lists], resolve)
        for b, r in zip(lists, ranked, strict=True):
            results[b] = r
    return [r for r in results if r is not None]


def process_lists(
    model: LoadedModel, jobs: Sequence[RankJob], resolve: Resolver | None
) -> list[Ranked]:
    """Resolve the batch's users and fold in its ad-hoc histories (if any), then
    ``rank_batch`` the ranking jobs and rate the prediction jobs' items; contexts ride along."""
    user_ids = [job.user_id for job in jobs if job.user_id is not None]
    histories = [job.events for job in jobs if job.events is not None]
    if not user_ids and not histories:
        return rank_batch(model, jobs)
    if user_ids and resolve is None:
        raise RuntimeError("a job names a user but the batcher has no resolver")
    resolved = iter(resolve(model, user_ids) if user_ids and resolve is not None else [])
    folded = iter(ad_hoc_contexts(model, histories) if histories else [])
    prepared: list[RankJob] = []
    contexts: list[UserContext | None] = []
    for job in jobs:
        if job.user_id is None and job.events is None:
            prepared.append(job)
            contexts.append(None)
            continue
        context = next(resolved) if job.user_id is not None else next(folded)
        if job.predict is not None:
            prepared.append(RankJob(context.state, job.banned, None, 0, predict=job.predict))
        else:
            # Plain constructors, not ``dataclasses.replace``: this runs per request, under the GIL.
            banned = _ban_seen(job, context.seen)
            prepared.append(
                RankJob(
                    context.state, banned, job.allowed, job.k, rules=job.rules, removed=job.removed
                )
            )
        contexts.append(context)
    ranking = [b for b, job in enumerate(prepared) if job.predict is None]
    results: list[Ranked | None] = [None] * len(prepared)
    if ranking:
        for b, r in zip(ranking, rank_batch(model, [prepared[b] for b in ranking]), strict=True):
            results[b] = r
    rating = [b for b, job in enumerate(prepared) if job.predict is not None]
    if rating:
        for b, r in zip(rating, predict_batch(model, [prepared[b] for b in rating]), strict=True):
            results[b] = r
    return [
        dataclasses.replace(r, context=c)
        for r, c in zip(results, contexts, strict=True)
        if r is not None
    ]


#: Most ratings one ``predict`` call of a batch computes (jobs x their items, most of
#: them discarded): typical requests (10 items) share a call 64 at a time; a request
#: of a thousand items gets a call of its own.
PREDICT_CELLS = 65_536


def predict_batch(model: LoadedModel, jobs: Sequence[RankJob]) -> list[Ranked]:
    """The model's ratings of each prediction job's items (none without a user state).

    One ``predict`` call for a group of jobs, every job's state against every job's
    items (R x C ratings for R jobs asking C items in all, at most ``PREDICT_CELLS``),
    then each job's own block of columns: a rating depends only on its user's state
    and its item, so this equals rating each job alone, and the per-call overhead
    (tensor conversions, dispatch: ~60 us) is paid once per group instead of once per
    request. Not deduplicated: sorting the items cost more than the products saved.
    """
    asked = [job.predict if job.predict is not None else np.zeros(0, np.int64) for job in jobs]
    out = [Ranked(items=items, scores=np.zeros(0, dtype=np.float32)) for items in asked]
    group: list[tuple[int, Tensor]] = []
    columns = 0
    for j, job in enumerate(jobs):
        if job.state is None or not asked[j].size:
            continue
        if group and (len(group) + 1) * (columns + asked[j].size) > PREDICT_CELLS:
            _rate_group(model, group, asked, out)
            group, columns = [], 0
        group.append((j, job.state))
        columns += asked[j].size
    if group:
        _rate_group(model, group, asked, out)
    return out


def _rate_group(
    model: LoadedModel, group: list[tuple[int, Tensor]], asked: list[np.ndarray], out: list[Ranked]
) -> None:
    """``predict_batch``'s one call: fills ``out[j]`` for every (j, state) of ``group``."""
    with torch.inference_mode():
        states = torch.cat([state.to(model.device) for _, state in group])  # (R, D)
        items = torch.as_tensor(np.concatenate([asked[j] for j, _ in group]), device=model.device)
        table = model.scorer.predict(states, items).float().cpu().numpy()  # (R, C)
    start = 0  # row r's own items are columns start .. start + its count
    for row, (j, _) in enumerate(group):
        out[j] = Ranked(items=asked[j], scores=table[row, start : start + asked[j].size])
        start += asked[j].size


def _ban_seen(job: RankJob, seen: np.ndarray) -> np.ndarray:
    """The job's banned items plus the user's seen ones (when asked); duplicates are harmless
    to the mask, and skipping ``union1d`` when there is nothing to merge saves a sort per job."""
    if not job.exclude_seen or not seen.size:
        return job.banned
    return seen if not job.banned.size else np.concatenate([job.banned, seen])


def rank_batch(model: LoadedModel, jobs: Sequence[RankJob]) -> list[Ranked]:
    """Rank ``jobs`` from the model's index when it has one, else ``rank_exact``."""
    if model.ann is not None:
        return model.ann.rank(model, jobs, rank_exact)
    return rank_exact(model, jobs)


def rank_exact(model: LoadedModel, jobs: Sequence[RankJob]) -> list[Ranked]:
    """Score ``jobs`` together (one score call) and ``rank_scored`` them."""
    with torch.inference_mode():
        return rank_scored(model, jobs, _score_rows(model, jobs))


def rank_scored(model: LoadedModel, jobs: Sequence[RankJob], scores: Tensor) -> list[Ranked]:
    """Apply rules, mask and top-k ``jobs`` over their (B, I) ``scores`` rows together: one
    mask, one ``torch.topk``; lists with a diversity rule are then re-ranked one by one.

    The one ranking of a scored row, whatever scored it: the scorer for users
    (``rank_exact``), an item's cosine or co-occurrence row for its similar list.
    """
    with torch.inference_mode():
        scores, dropped, units = apply_rules(scores.float(), [job.rules for job in jobs])
        mask = _mask(jobs, model.n_items, scores.device)  # (B, I) True = never return
        if dropped is not None:
            mask |= dropped
        scores = scores.masked_fill(mask, float("-inf"))
        available = (~mask).sum(dim=1)  # (B,)
        k = min(max(job.k for job in jobs), model.n_items)
        values, indices = torch.topk(scores, k, dim=1)  # (B, k)
        values_np = values.cpu().numpy()
        indices_np = indices.cpu().numpy()
        available_np = available.cpu().numpy()
        units_np = units.cpu().numpy() if units is not None else None
        ranked = []
        for b, job in enumerate(jobs):
            unit = (
                float(units_np[b]) if units_np is not None and units_np[b] == units_np[b] else None
            )
            plan = job.rules
            if plan is not None and plan.diversifies:
                items, picked = diversify(model, scores[b], job.k, plan.cap, plan.mmr)
                ranked.append(Ranked(items=items, scores=picked, boost_unit=unit))
                continue
            n = min(job.k, int(available_np[b]))
            ranked.append(Ranked(items=indices_np[b, :n], scores=values_np[b, :n], boost_unit=unit))
    return ranked


def rank_similar(model: LoadedModel, jobs: Sequence[RankJob]) -> list[Ranked]:
    """Similar lists of a batch (``RankJob.similar_to``), in one product for the batch.

    From the similar-items index when the server uses one (``similarity_view``: the
    items' unit vectors are the states, ranked like users' lists), else from the exact
    cosine (or co-occurrence) rows; each job's ``banned`` leaves its own item out.
    Served one request at a time on the thread pool, a similar list cost ~3x a user's
    list at 32 connections (docs/performance.md, "Similar lists join the micro-batch").
    """
    items = [job.similar_to for job in jobs if job.similar_to is not None]
    if len(items) != len(jobs):
        raise ValueError("rank_similar takes similar-list jobs only")
    view = similarity_view(model)
    if view is not None:
        queries = similar_queries(view, items)
        return rank_batch(
            view,
            [
                RankJob(
                    queries[b : b + 1],
                    job.banned,
                    job.allowed,
                    job.k,
                    rules=job.rules,
                    removed=job.removed,
                )
                for b, job in enumerate(jobs)
            ],
        )
    with torch.inference_mode():
        rows = model.similar_rows(items).to(model.device)  # (B, I)
    return rank_scored(model, jobs, rows)


def rank_similar_exactly(
    model: LoadedModel,
    index: int,
    k: int,
    rules: RulePlan | None = None,
    removed: RemovedMask | None = None,
) -> Ranked:
    """Item ``index``'s similar list from its exact cosine (or co-occurrence) row, the
    item itself and ``removed`` items left out, ranked as any scored row is: what the
    dashboard's text placement serves (and ``rank_similar`` without an index)."""
    own = np.array([index], dtype=np.int64)
    job = RankJob(None, own, None, k, rules=rules, removed=removed)
    with torch.inference_mode():
        row = model.similar_rows([index]).to(model.device)  # (1, I)
    return rank_scored(model, [job], row)[0]


def _score_rows(model: LoadedModel, jobs: Sequence[RankJob]) -> Tensor:
    """(B, I) float32: the scorer's scores for jobs with a state, popularity for the rest."""
    device = model.device
    personal = [b for b, job in enumerate(jobs) if job.state is not None]
    states = [jobs[b].state for b in personal]
    if len(personal) == len(jobs):
        stacked = torch.cat([s.to(device) for s in states if s is not None])  # (B, D)
        return model.scorer.score(stacked).float()
    popularity = torch.as_tensor(model.popularity, device=device).float()
    scores = popularity.unsqueeze(0).repeat(len(jobs), 1)  # (B, I)
    if personal:
        stacked = torch.cat([s.to(device) for s in states if s is not None])
        scores[torch.tensor(personal, device=device)] = model.scorer.score(stacked).float()
    return scores


def _mask(jobs: Sequence[RankJob], n_items: int, device: torch.device) -> Tensor:
    """(B, I) bool: True where an item must not be returned (banned, removed from the
    catalog, or outside ``allowed``)."""
    mask = torch.zeros(len(jobs), n_items, dtype=torch.bool, device=device)
    for b, job in enumerate(jobs):
        if job.allowed is not None:
            mask[b] = True
            if job.allowed.size:
                mask[b, torch.as_tensor(job.allowed, device=device)] = False
    # After ``allowed``, which clears the mask at the included items: ORed in before it, a
    # removed item named in ``include`` was unmasked and listed again.
    _mask_removed(mask, jobs, device)
    lengths = [job.banned.size for job in jobs]
    if sum(lengths):
        rows = np.repeat(np.arange(len(jobs)), lengths)
        cols = np.concatenate([job.banned for job in jobs]).astype(np.int64, copy=False)
        mask[torch.as_tensor(rows, device=device), torch.as_tensor(cols, device=device)] = True
    return mask


def _mask_removed(mask: Tensor, jobs: Sequence[RankJob], device: torch.device) -> None:
    """OR each job's removed-items row into its row of ``mask``: one broadcast for the
    usual batch (every job of a model shares its ``RemovedMask``), one per distinct mask
    otherwise (a removal landed while the batch filled; every mask of a batch is its
    model's width, as a batch has one model)."""
    groups: dict[int, tuple[RemovedMask, list[int]]] = {}
    for b, job in enumerate(jobs):
        if job.removed is not None:
            groups.setdefault(id(job.removed), (job.removed, []))[1].append(b)
    for removed, rows in groups.values():
        row = removed.tensor(device)
        if len(rows) == len(jobs):
            mask |= row  # broadcast over the batch
        else:
            index = torch.as_tensor(rows, device=device)
            mask[index] |= row


def candidate_mask(job: RankJob, candidates: np.ndarray) -> np.ndarray:
    """(C,) bool over item indices ``candidates``: True where ``_mask`` would mask the item.

    The one masking rule for candidate lists (approximate retrieval); an item
    mask added to ``_mask`` belongs here too. Negative entries (no candidate) are masked.
    """
    masked = candidates < 0
    if job.rules is not None and job.rules.drop is not None:  # an attribute filter
        masked |= job.rules.drop.cpu().numpy()[np.maximum(candidates, 0)]
    if job.removed is not None:  # items removed from the catalog
        masked |= job.removed.row[np.maximum(candidates, 0)]
    if job.banned.size:
        masked |= np.isin(candidates, job.banned)
    if job.allowed is not None:
        masked |= ~np.isin(candidates, job.allowed)
    return masked


def count_retrieval(metrics: Metrics, model: str, results: Sequence[Ranked]) -> None:
    """Lists of an indexed model answered from the index, and those that fell back to
    exact scoring (by reason)."""
    counts: dict[str, int] = {}
    for result in results:
        counts[result.retrieval] = counts.get(result.retrieval, 0) + 1
    for how, n in counts.items():
        if how == "ann":
            metrics.ann_rows.labels(model=model).inc(n)
        elif how != "exact":
            metrics.ann_fallbacks.labels(model=model, reason=how).inc(n)


def _set_search_threads(n: int) -> None:
    """A scoring thread's initializer: FAISS's OpenMP threads for this thread (0: default)."""
    if n:
        faiss.omp_set_num_threads(n)


@dataclass
class _Entry:
    job: RankJob
    future: asyncio.Future[Ranked]
    arrived: float  # loop.time()


class ScoreBatcher:
    """Collects ``RankJob``s for one model version and scores them in batches.

    All methods run on the event loop thread; only ``rank_batch`` runs on the
    batcher's dedicated scoring thread (torch releases the GIL while it computes).
    """

    def __init__(
        self,
        model: LoadedModel,
        metrics: Metrics,
        max_batch: int = 64,
        wait_s: float = 0.001,
        resolve: Resolver | None = None,
        search_threads: int = 0,
    ) -> None:
        self.model = model
        self.resolve = resolve
        self.metrics = metrics
        self.max_batch = max_batch
        self.wait_s = wait_s
        self._pending: list[_Entry] = []
        self._wakeup: asyncio.Event | None = None
        self._full: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._last_batch = 0  # size of the batch scored last (a load signal for the window)
        # FAISS searches on this thread; OpenMP keeps its thread count per thread, so a
        # count set anywhere else does not reach it (docs/performance.md, "Similar lists
        # join the micro-batch"). 0 keeps OpenMP's default, one per core.
        self._executor = ThreadPoolExecutor(
            1,
            thread_name_prefix=f"score-{model.name}",
            initializer=_set_search_threads,
            initargs=(search_threads,),
        )

    async def rank(self, job: RankJob) -> Ranked:
        """Queue ``job`` and wait for its batch to be scored."""
        if self._closing:
            raise BatcherClosed(f"{self.model.name} version {self.model.version} is shutting down")
        loop = asyncio.get_running_loop()
        if self._task is None:
            self._wakeup = asyncio.Event()
            self._task = loop.create_task(self._run(), name=f"batcher-{self.model.name}")
        future: asyncio.Future[Ranked] = loop.create_future()
        self._pending.append(_Entry(job, future, loop.time()))
        assert self._wakeup is not None
        self._wakeup.set()
        if len(self._pending) >= self.max_batch:
            self._release_window()
        return await future

    async def close(self) -> None:
        """Take no new jobs, score everything queued, stop the loop and the scoring thread."""
        self._closing = True
        self._release_window()
        if self._task is not None and self._wakeup is not None:
            self._wakeup.set()
            await self._task
        self._executor.shutdown(wait=False)

    # -- the loop -----------------------------------------------------------------------

    async def _run(self) -> None:
        assert self._wakeup is not None
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                await self._wait_window(loop)
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
                self._last_batch = len(batch)
                await self._score(loop, batch)
            if self._closing:
                return

    async def _wait_window(self, loop: asyncio.AbstractEventLoop) -> None:
        """Sleep until the oldest job has waited ``wait_s`` or the batch is full.

        A lone job after a lone batch does not wait: with nobody else in flight
        (one connection, a quiet server) the window would only add latency.
        """
        remaining = self._pending[0].arrived + self.wait_s - loop.time()
        if remaining <= 0 or self._closing or len(self._pending) >= self.max_batch:
            return
        if len(self._pending) == 1 and self._last_batch <= 1:
            return
        self._full = loop.create_future()
        timer = loop.call_later(remaining, self._release_window)
        try:
            await self._full
        finally:
            timer.cancel()
            self._full = None

    def _release_window(self) -> None:
        if self._full is not None and not self._full.done():
            self._full.set_result(None)

    async def _score(self, loop: asyncio.AbstractEventLoop, batch: list[_Entry]) -> None:
        live = [entry for entry in batch if not entry.future.done()]  # skip cancelled requests
        if not live:
            return
        started = time.perf_counter()
        try:
            results = await loop.run_in_executor(
                self._executor,
                process_batch,
                self.model,
                [entry.job for entry in live],
                self.resolve,
            )
        except Exception as exc:  # the loop keeps running; only the failing jobs fail
            log.exception("scoring a batch of %d for %s failed", len(live), self.model.name)
            await self._score_alone(loop, live, exc)
            return
        self.metrics.batch_size.labels(model=self.model.name).observe(len(live))
        self._count_retrieval(results)
        self.metrics.batch_seconds.labels(model=self.model.name).observe(
            time.perf_counter() - started
        )
        for entry, result in zip(live, results, strict=True):
            if not entry.future.done():
                entry.future.set_result(result)

    def _count_retrieval(self, results: Sequence[Ranked]) -> None:
        if self.model.ann is not None or self.model.similar_ann is not None:
            count_retrieval(self.metrics, self.model.name, results)

    async def _score_alone(
        self, loop: asyncio.AbstractEventLoop, live: list[_Entry], error: Exception
    ) -> None:
        """After a batch failed, score its jobs one by one so that only those that fail
        alone get an error.

        A batch mixes requests that have nothing in common (users' lists, predictions,
        similar lists, histories); one request that trips a defect must not fail up to
        ``max_batch - 1`` others. The database and the cache degrade instead of raising
        (``app.serving.state``), so what raises here is a defect or a bad job, and the
        extra work (at most ``max_batch`` single calls) happens only on that path. A
        batch of one is not scored again.
        """
        if len(live) == 1:
            self.metrics.failed_jobs.labels(model=self.model.name).inc()
            if not live[0].future.done():
                live[0].future.set_exception(error)
            return
        failed = 0
        answered: list[Ranked] = []
        for entry in live:
            if entry.future.done():
                continue
            try:
                results = await loop.run_in_executor(
                    self._executor, process_batch, self.model, [entry.job], self.resolve
                )
            except Exception as exc:
                failed += 1
                log.warning("a job of %s failed alone: %r", self.model.name, exc)
                if not entry.future.done():
                    entry.future.set_exception(exc)
                continue
            answered.extend(results)
            if not entry.future.done():
                entry.future.set_result(results[0])
        self.metrics.failed_jobs.labels(model=self.model.name).inc(failed)
        self._count_retrieval(answered)
        log.warning(
            "%s: %d of the failed batch's %d jobs failed alone; the others were answered",
            self.model.name,
            failed,
            len(live),
        )


class Served(Protocol):
    """What the batchers ask the model holder (``ModelHolder``)."""

    @property
    def generation(self) -> int:
        """Moves whenever what is served changes."""
        ...

    def serves(self, model: LoadedModel) -> bool:
        """Whether production or a pin serves this very object now."""
        ...


class Batchers:
    """One ``ScoreBatcher`` per served model object; the others retire once no longer
    served.

    Keyed by the object, not by (name, revision): a version read again because its files
    changed (``genrec models index``) has the revision of the object it replaces, and
    the revision's batcher kept scoring the old object, without the new index, until
    the catalog or a promotion made a new revision. Retired by what the holder serves,
    not by "a newer production batcher of that name": a pinned version's batcher
    (an experiment's variant) was retired by each production batcher of its model and
    never by the end of its experiment, so a pin of another model stayed in memory,
    with its scoring thread, for the server's life. Whenever the holder's
    ``generation`` moved, the next request retires the batchers of objects it no
    longer serves; each drains what is queued first (``ScoreBatcher.close``), so a
    request that still holds a swapped-out or released version is answered.

    Used from the event loop thread only, so it needs no lock.
    """

    def __init__(
        self,
        metrics: Metrics,
        max_batch: int,
        wait_s: float,
        served: Served,
        resolve: Resolver | None = None,
        search_threads: int = 0,
    ) -> None:
        self.metrics = metrics
        self.max_batch = max_batch
        self.wait_s = wait_s
        self.served = served
        self.resolve = resolve
        self.search_threads = search_threads
        # By id(model): the batcher holds the model, so the id names no other object.
        self._by_model: dict[int, ScoreBatcher] = {}
        self._swept: int | None = None  # the holder's generation at the last sweep
        self._retiring: set[asyncio.Task[None]] = set()

    def for_model(self, model: LoadedModel) -> ScoreBatcher:
        """The batcher of this very ``model`` object (a new one for a new object)."""
        if self._swept != self.served.generation:
            self._sweep()
        batcher = self._by_model.get(id(model))
        if batcher is None:
            batcher = ScoreBatcher(
                model,
                self.metrics,
                self.max_batch,
                self.wait_s,
                resolve=self.resolve,
                search_threads=self.search_threads,
            )
            self._by_model[id(model)] = batcher
            if not self.served.serves(model):  # a request still holding a replaced one:
                self._swept = None  # its batcher retires at the next request
        return batcher

    def _sweep(self) -> None:
        """Retire the batchers of objects the holder no longer serves."""
        self._swept = self.served.generation  # read first: a change meanwhile sweeps again
        for key, batcher in list(self._by_model.items()):
            if not self.served.serves(batcher.model):
                del self._by_model[key]
                task = asyncio.get_running_loop().create_task(batcher.close())
                self._retiring.add(task)  # keep a reference until it finished draining
                task.add_done_callback(self._retiring.discard)

    async def close(self) -> None:
        """Drain and stop every batcher (graceful shutdown)."""
        batchers, self._by_model = list(self._by_model.values()), {}
        for batcher in batchers:
            await batcher.close()
        if self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)
