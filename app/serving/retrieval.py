"""Approximate retrieval: candidates from a version's FAISS index, re-scored exactly.

Why: at a million items the exact path's (B, D) x (D, I) product and top-k
dominate a request. For a model whose score is an inner product with an item
table (``InnerProductScorer``) the index proposes a few hundred candidates per
user; they are scored with the model's own ``score(state, items)`` and masked
with the batcher's ``candidate_mask``, so the scores returned are exact and
the masks are the exact path's. Only which items are looked at is
approximate (Recall@100 against the exact list: docs/performance.md).

Over-fetch: a job asks the index for ``GENREC_ANN_CANDIDATES`` (at least k)
plus one per masked item (seen, ``exclude``), so masks cannot leave it short
unless the index returned fewer distinct items than that. Items removed from
the catalog are not fetched at all: the search skips them itself (a FAISS
selector of the items kept, ``RemovedMask.kept_selector``), however many there
are. A job that would need more than
``GENREC_ANN_MAX_CANDIDATES``, or that is left with fewer than k candidates
after masking, is ranked by the exact path and counted in
``genrec_ann_fallback{reason}``. An ``include`` list is itself the candidate
set (scored exactly, no index); popularity-fallback rows stay exact. A list
with an attribute filter or a boost (``app.rules``) is searched within the
items the filter keeps, once per group of them sharing a boost offset, and a
boost's unit comes from the item table's covariance (``app.serving.ann_rules``).
A diversity rule (a cap, MMR) fetches at least
its first pool (``app.rules.diversity.pool_size``: 20 k, 200 at least) and
re-ranks the best of the candidates (``diversify_candidates``); a list that
pool cannot fill falls back as ``too_few_candidates`` (the exact path grows
its pool over the whole row). A boost plan with more than
``ann_rules.MAX_GROUPS`` distinct offsets is ranked exactly
(``genrec_ann_fallback{reason="rules"}``).

``AnnLoader`` is the holder's load listener that opens the index (memory
mapped) when ``GENREC_ANN`` says so; ``LoadedModel.ann`` is then set and
``batcher.rank_batch`` routes through ``AnnRetrieval.rank``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Sequence

import faiss
import numpy as np
import torch
from torch import Tensor

from app.core.config import Settings
from app.rules.diversity import diversify_candidates, pool_size
from app.serving.ann_rules import OffsetGroups, ScoreSpread
from app.serving.batcher import Ranked, RankJob, candidate_mask
from app.serving.loaded import LoadedModel
from app.serving.removed import RemovedMask
from app.serving.similarity import open_similar
from training.ann import AnnError, IndexParams, default_nprobe, read_index, supports_ann
from training.models.base import InnerProductScorer
from training.overfetch import candidates_to_fetch

log = logging.getLogger(__name__)

#: The exact ranking path (``batcher.rank_exact``), for the jobs the index cannot answer.
ExactRanker = Callable[[LoadedModel, Sequence[RankJob]], list[Ranked]]

TOO_MANY_MASKED = "too_many_masked"
TOO_FEW_CANDIDATES = "too_few_candidates"
#: A boost plan with too many distinct offsets to search group by group
#: (``ann_rules.MAX_GROUPS``).
RULES = "rules"


class AnnRetrieval:
    """One version's opened index plus the server's over-fetch settings."""

    def __init__(
        self, index: faiss.Index, params: IndexParams, candidates: int, max_candidates: int
    ) -> None:
        self.index = index
        self.params = params
        self.candidates = candidates
        self.max_candidates = max_candidates
        self.spread = ScoreSpread()
        self.groups = OffsetGroups(whole_up_to=max_candidates)

    @property
    def nprobe(self) -> int:
        return int(faiss.extract_index_ivf(self.index).nprobe)

    def rank(self, model: LoadedModel, jobs: Sequence[RankJob], exact: ExactRanker) -> list[Ranked]:
        """Top-k of every job: index candidates re-scored and masked, or the exact path."""
        fallback: dict[int, str] = {}  # job -> "exact" (popularity rows) or a fallback reason
        searched: list[int] = []
        grouped: list[int] = []  # a filter or a boost: searched per group (``ann_rules``)
        candidates: dict[int, np.ndarray] = {}
        included: set[int] = set()  # candidates = the include list: every item it may hold
        for b, job in enumerate(jobs):
            if job.state is None:
                fallback[b] = "exact"
            elif job.allowed is not None and job.allowed.size <= self.max_candidates:
                candidates[b] = job.allowed  # the include list is the whole candidate set
                included.add(b)
            elif self._fetch(job) > self.max_candidates:
                fallback[b] = TOO_MANY_MASKED
            elif job.rules is not None and (
                job.rules.offset is not None or job.rules.keep is not None
            ):
                if self.groups.of(job.rules) is None:
                    fallback[b] = RULES
                else:
                    grouped.append(b)
            else:
                searched.append(b)
        candidates.update(self._search(model, jobs, searched))
        kept: dict[int, np.ndarray] = {}
        for b, items in candidates.items():
            left = items[~candidate_mask(jobs[b], items)]
            if b in searched and left.size < _needed(jobs[b]):
                fallback[b] = TOO_FEW_CANDIDATES
            else:
                kept[b] = left
        for b, parts in self._search_groups(model, jobs, grouped).items():
            lefts = [items[~candidate_mask(jobs[b], items)] for items, _ in parts]
            # A searched group must keep k (a diversity pool) of its own: items it did not
            # return may outrank the other groups' after the boost. A group taken whole has
            # nothing unseen.
            short = [
                not whole and left.size < _needed(jobs[b])
                for (_, whole), left in zip(parts, lefts, strict=True)
            ]
            if any(short):
                fallback[b] = TOO_FEW_CANDIDATES
            else:  # a filter that keeps nothing leaves no group, and an empty list
                kept[b] = np.unique(np.concatenate(lefts)) if lefts else np.empty(0, np.int64)
        results, unfilled = self._rescore(model, jobs, kept, included)
        fallback.update(dict.fromkeys(unfilled, TOO_FEW_CANDIDATES))
        if fallback:
            rows = sorted(fallback)
            for b, ranked in zip(rows, exact(model, [jobs[b] for b in rows]), strict=True):
                results[b] = dataclasses.replace(ranked, retrieval=fallback[b])
        return [results[b] for b in range(len(jobs))]

    def _fetch(self, job: RankJob) -> int:
        """Candidates to ask for: the over-fetch (a diversity rule's first pool at least),
        and one more per banned item. Items removed from the catalog need none: the
        search skips them itself (``RemovedMask.kept_selector``). The rule is
        ``training.overfetch``'s, which the index's build-time calibration measures too."""
        return candidates_to_fetch(_needed(job), self.candidates, int(job.banned.size))

    def _search(
        self, model: LoadedModel, jobs: Sequence[RankJob], rows: list[int]
    ) -> dict[int, np.ndarray]:
        """Index candidates of ``rows`` (few FAISS calls), plus items the index has not seen."""
        if not rows:
            return {}
        queries = _queries(model, jobs, rows)
        fetches = np.array([min(self._fetch(jobs[b]), self.index.ntotal) for b in rows])
        labels: list[np.ndarray] = [np.empty(0, np.int64)] * len(rows)
        # Jobs share their model's removal mask (two only when a removal landed while the
        # batch filled): one search per mask, skipping its items, probing as many more
        # lists as the removals thin the catalog out.
        for removed, positions in _by_removal(jobs, rows).items():
            selector, nprobe = None, None
            if removed is not None:
                selector = removed.kept_selector()
                nprobe = self._group_nprobe(self.index.ntotal - removed.size)
            hits = self._search_banded(queries[positions], fetches[positions], selector, nprobe)
            for position, found in zip(positions, hits, strict=True):
                labels[position] = found
        unindexed = _unindexed(model)
        out = {}
        for row, b in enumerate(rows):
            kept = labels[row]
            out[b] = np.union1d(kept[kept >= 0], unindexed) if unindexed.size else kept
        return out

    def _group_nprobe(self, size: int) -> int:
        """Lists to probe for a search restricted to ``size`` items: as many more as the
        group is rarer than the catalog, so that about as many of its members are looked
        at as an unrestricted search looks at items (the scan skips non-members cheaply)."""
        ivf = faiss.extract_index_ivf(self.index)
        share = max(size, 1) / max(self.index.ntotal, 1)
        return int(min(ivf.nlist, math.ceil(self.nprobe / min(share, 1.0))))

    def _search_banded(
        self,
        queries: np.ndarray,
        fetches: np.ndarray,
        selector: faiss.IDSelector | None = None,
        nprobe: int | None = None,
    ) -> list[np.ndarray]:
        """Labels per query row (-1 = none), restricted to ``selector``'s items when given.

        One FAISS call per power-of-two band of fetch sizes: a heavy user's long seen
        list must not make every job of the batch fetch (and sort) as many candidates.
        """
        params = None
        if selector is not None:
            params = faiss.SearchParametersIVF()
            params.sel = selector
            params.nprobe = nprobe or self.nprobe
        bands = np.ceil(np.log2(np.maximum(fetches, 1))).astype(np.int64)
        labels: list[np.ndarray] = [np.empty(0, np.int64)] * len(fetches)
        for band in np.unique(bands):
            members = np.flatnonzero(bands == band)
            _, found = self.index.search(
                np.ascontiguousarray(queries[members]), int(fetches[members].max()), params=params
            )
            for row, position in enumerate(members):
                labels[position] = found[row]
        return labels

    def _search_groups(
        self, model: LoadedModel, jobs: Sequence[RankJob], rows: list[int]
    ) -> dict[int, list[tuple[np.ndarray, bool]]]:
        """Per filtered or boosted job, its candidates per group: (items, taken whole?).

        A group of at most ``max_candidates`` items is taken whole (scored exactly,
        as an include list is); a larger one is searched restricted to its items,
        probing more lists the rarer it is (``_group_nprobe``). Items the index has
        not seen join the candidates as a group taken whole.
        """
        if not rows:
            return {}
        queries = _queries(model, jobs, rows)
        unindexed = _unindexed(model)
        out: dict[int, list[tuple[np.ndarray, bool]]] = {
            b: [(unindexed, True)] if unindexed.size else [] for b in rows
        }
        # Jobs of one plan (and one removal mask) share its groups' searches.
        by_plan: dict[tuple[int, int], list[int]] = {}
        for position, b in enumerate(rows):
            by_plan.setdefault((id(jobs[b].rules), id(jobs[b].removed)), []).append(position)
        for positions in by_plan.values():
            first = jobs[rows[positions[0]]]
            plan = first.rules
            assert plan is not None
            groups = self.groups.of(plan)
            assert groups is not None  # ``rank`` sent plans without groups to the exact path
            fetches = np.array([self._fetch(jobs[rows[p]]) for p in positions])
            for group in groups:
                if group.items is not None:  # scored whole, as an include list
                    for p in positions:
                        out[rows[p]].append((group.items, True))
                    continue
                selector = group.selector
                assert selector is not None  # a group not taken whole is searched
                if first.removed is not None:  # the group's items that are not removed
                    selector = faiss.IDSelectorAnd(selector, first.removed.kept_selector())
                labels = self._search_banded(
                    queries[positions],
                    np.minimum(fetches, group.size),
                    selector,
                    self._group_nprobe(group.size),
                )
                for p, found in zip(positions, labels, strict=True):
                    out[rows[p]].append((found[found >= 0], False))
        return out

    def _rescore(
        self,
        model: LoadedModel,
        jobs: Sequence[RankJob],
        kept: dict[int, np.ndarray],
        complete: set[int],
    ) -> tuple[dict[int, Ranked], list[int]]:
        """Exact scores of each job's own candidates (``score(state, items)``), boosted as
        the exact path boosts (``app.rules.apply``), then top-k, or a diversity rule's
        selection (``diversify_candidates``; ``complete``: the candidates are an include
        list). Also the jobs whose diversity rule the candidates could not fill.

        One small product per job: a shared call over the union of the batch's
        candidates would score every job against every other job's candidates.
        """
        units = self._boost_units(model, jobs, list(kept))
        results = {}
        unfilled = []
        with torch.inference_mode():
            for b, items in kept.items():
                job = jobs[b]
                state = job.state
                assert state is not None  # only personal rows get candidates
                plan = job.rules
                if not items.size:
                    values = np.zeros(0, dtype=np.float32)
                else:
                    candidates = torch.as_tensor(items, device=model.device)
                    row = model.scorer.score(state.to(model.device), candidates)[0].float()
                    if b in units and plan is not None and plan.offset is not None:
                        row = row + units[b] * plan.offset[candidates]
                    values = row.cpu().numpy()
                unit = float(units[b]) if b in units else None
                if plan is not None and plan.diversifies:
                    picked = diversify_candidates(
                        model, items, values, job.k, plan.cap, plan.mmr, b in complete
                    )
                    if picked is None:
                        unfilled.append(b)
                        continue
                    results[b] = Ranked(
                        items=picked[0],
                        scores=picked[1],
                        boost_unit=unit,
                        retrieval=self._how(job),
                    )
                    continue
                k = min(job.k, items.size)
                top = np.argpartition(-values, k - 1)[:k] if 0 < k < items.size else np.arange(k)
                top = top[np.argsort(-values[top], kind="stable")]
                results[b] = Ranked(
                    items=items[top].astype(np.int64, copy=False),
                    scores=values[top].astype(np.float32, copy=False),
                    boost_unit=unit,
                    retrieval=self._how(job),
                )
        return results, unfilled

    def _boost_units(
        self, model: LoadedModel, jobs: Sequence[RankJob], rows: list[int]
    ) -> dict[int, Tensor]:
        """The boost unit (spread of all the user's scores) of each boosted job in ``rows``."""
        boosted = [
            b for b in rows if (plan := jobs[b].rules) is not None and plan.offset is not None
        ]
        if not boosted:
            return {}
        scorer = model.scorer
        assert isinstance(scorer, InnerProductScorer)  # AnnLoader attaches no index otherwise
        spreads = self.spread.of(scorer, _query_rows(model, jobs, boosted))
        return {b: spreads[n] for n, b in enumerate(boosted)}

    @staticmethod
    def _how(job: RankJob) -> str:
        """An include list is ranked exactly; everything else here came from the index."""
        return "exact" if job.allowed is not None else "ann"


def _query_rows(model: LoadedModel, jobs: Sequence[RankJob], rows: list[int]) -> Tensor:
    """(len(rows), D') float32 inner-product queries of the jobs ``rows`` (all personal),
    on the model's device."""
    scorer = model.scorer
    assert isinstance(scorer, InnerProductScorer)  # AnnLoader attaches no index otherwise
    states = torch.cat([s.to(model.device) for b in rows if (s := jobs[b].state) is not None])
    with torch.inference_mode():
        return scorer.inner_product_queries(states).float()


def _by_removal(jobs: Sequence[RankJob], rows: list[int]) -> dict[RemovedMask | None, list[int]]:
    """Positions in ``rows`` by the removal mask of their job (``RankJob.removed``)."""
    out: dict[RemovedMask | None, list[int]] = {}
    for position, b in enumerate(rows):
        out.setdefault(jobs[b].removed, []).append(position)
    return out


def _queries(model: LoadedModel, jobs: Sequence[RankJob], rows: list[int]) -> np.ndarray:
    """``_query_rows`` as the FAISS search takes them."""
    queries: np.ndarray = _query_rows(model, jobs, rows).cpu().numpy()
    return queries


def _unindexed(model: LoadedModel) -> np.ndarray:
    """Rows a catalog added or refreshed from text after the build: not (correctly) in the
    index, so they are candidates of every request, scored exactly like the rest."""
    return np.fromiter(model.from_text, dtype=np.int64, count=len(model.from_text))


def _needed(job: RankJob) -> int:
    """Unmasked candidates a searched job must keep: k, or a diversity rule's first pool
    (``app.rules.diversity.pool_size``), which re-ranks the pool's best items."""
    plan = job.rules
    if plan is not None and plan.diversifies:
        return pool_size(job.k)
    return job.k


def auto_uses_index(n_items: int, device: torch.device, auto_items: int) -> bool:
    """Whether ``GENREC_ANN=auto`` opens the index of a version of ``n_items`` on ``device``.

    Only on the CPU, from ``auto_items`` items. On a GPU the exact product is
    one GEMM and one top-k per batch: on an H200 it served a million-item
    catalog at 1,486 recommendations/s at 32 connections, the rate of a
    1,682-item one, with every list exact, while the index (a CPU FAISS search)
    served 181/s on the 2-core development machine (docs/performance.md, "On a
    GPU"). ``GENREC_ANN=on`` still forces the index there.
    """
    return device.type == "cpu" and n_items >= auto_items


#: ``GENREC_ANN=auto`` leaves a retrieval index closed whose calibration needed more than
#: this share of its lists (``calibration_problem``).
MAX_PROBED_SHARE = 1 / 8


def calibration_problem(section: dict[str, object]) -> str | None:
    """Why a retrieval index's own calibration (the manifest's ``retrieval.calibration``,
    measured on sampled training users at build time) says it should not serve lists
    under ``GENREC_ANN=auto``; None when it may, or when there is no calibration (a
    version built before it existed, or with an explicit ``--nprobe``: as before).

    Two reasons. Its recall stayed below the target with every breadth tried. Or it
    needed more than ``MAX_PROBED_SHARE`` (1/8) of its lists, and more than the default
    breadth, to reach it: IVF-flat scans each probed list whole, so its cost grows with
    the share probed, while the exact path's is one batched product. On the 100,000-item
    iid catalog, a fifth of the lists (256 of 1,265) ranked only 1.7x as fast as the
    exact path in process (one core, batches of 32) at Recall@100 0.47; at 100,000 items
    batching already made the exact server as fast as the index at 16 lists at 32
    connections; and on a 50,000-item iid catalog, whose calibration needed all 894
    lists, ``on`` served 21 lists/s at 32 connections against the exact server's 112
    (docs/performance.md, "Approximate retrieval"). Past an eighth the index saves
    little in a lone request and loses under load, so every list is served exact instead.
    The default breadth itself is never refused for its share: a small catalog's default
    is all of its few lists, as it always was.
    """
    calibration = section.get("calibration")
    if not isinstance(calibration, dict):
        return None
    try:
        recall = float(calibration["recall"])
        target = float(calibration["target_recall"])
        k, queries = int(calibration["k"]), int(calibration["queries"])
        nprobe, nlist = int(str(section["nprobe"])), int(str(section["nlist"]))
        default = default_nprobe(nlist)
        tried = calibration.get("tried")
        at_default = tried.get(str(default)) if isinstance(tried, dict) else None
        versus = (
            ""
            if at_default is None or default == nprobe
            else f", {float(at_default):.3f} with {default}"
        )
    except (KeyError, TypeError, ValueError) as exc:
        return f"its calibration is unreadable ({exc!r})"
    sample = f"{queries} sampled users' exact top {k}"
    if recall < target:
        return (
            f"its calibration found Recall@{k} {recall:.3f} of {sample} with {nprobe} of "
            f"{nlist} lists{versus}, "
            f"below the target {target:.2f}"
        )
    if nprobe > max(default, nlist * MAX_PROBED_SHARE):
        return (
            f"its calibration needs {nprobe} of {nlist} lists to find {target:.0%} of {sample} "
            f"(Recall@{k} {recall:.3f}{versus}): more than 1/8 of its lists"
        )
    return None


def calibrated_recall(section: dict[str, object], nprobe: int) -> str:
    """The calibration's Recall@k at ``nprobe`` lists, for the log ("calibrated Recall@100
    0.993": on the build's sampled users, or items for the similar-items index), or that
    this breadth was not measured."""
    calibration = section.get("calibration")
    tried = calibration.get("tried") if isinstance(calibration, dict) else None
    if not isinstance(calibration, dict) or not isinstance(tried, dict) or str(nprobe) not in tried:
        return "recall not measured"
    try:
        return f"calibrated Recall@{calibration.get('k')} {float(tried[str(nprobe)]):.3f}"
    except (TypeError, ValueError):
        return "recall unreadable"


class AnnLoader:
    """Load listener (``ModelHolder.add_load_listener``): opens the index per ``GENREC_ANN``.

    ``off`` never; ``on`` for every inner-product version that has an index;
    ``auto`` for those with at least ``GENREC_ANN_AUTO_ITEMS`` items served on
    the CPU (``auto_uses_index``) whose retrieval index's calibration does not say it
    cannot serve (``calibration_problem``: logged, users' lists are then exact; ``on``
    opens such an index with a warning). A version
    without an index, or whose index does not open, is served exactly (logged):
    the index is an accelerator, never a reason to refuse a version.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def __call__(self, model: LoadedModel) -> LoadedModel:
        mode = self.settings.ann
        if model.ann is not None or mode == "off" or not supports_ann(model.scorer):
            return model
        if mode == "auto" and not auto_uses_index(
            model.n_items, model.device, self.settings.ann_auto_items
        ):
            return model
        where = f"{model.name} version {model.version}"
        if model.index_path is None or not model.manifest.retrieval:
            log.warning(
                "%s has no retrieval index; scoring exactly (build one: genrec models index %s@%s)",
                where,
                model.name,
                model.version,
            )
            return model
        problem = calibration_problem(model.manifest.retrieval)
        retrieval = None
        if problem is not None and mode == "auto":
            log.warning(
                "%s: retrieval index not used (GENREC_ANN=auto), users' lists are exact: "
                "%s (GENREC_ANN=on forces it)",
                where,
                problem,
            )
        else:
            retrieval = self._open(
                model,
                model.index_path,
                model.manifest.retrieval,
                "retrieval",
                self.settings.ann_nprobe,
            )
        if retrieval is not None and problem is not None:
            log.warning(
                "%s: retrieval index on (GENREC_ANN=on) although %s; "
                "at nprobe=%d, %s (a search of that many lists can be slower than scoring "
                "exactly, which GENREC_ANN=auto does)",
                where,
                problem,
                retrieval.nprobe,
                calibrated_recall(model.manifest.retrieval, retrieval.nprobe),
            )
        if retrieval is not None:
            assert isinstance(model.scorer, InnerProductScorer)  # supports_ann said so above
            retrieval.spread.covariance_of(model.scorer)  # boosts need it; at load
            model = dataclasses.replace(model, ann=retrieval)
        similar_params = model.manifest.retrieval.get("similar")
        if model.similar_index_path is None or not isinstance(similar_params, dict):
            log.info("%s has no similar-items index; similar items are exact", where)
            return model
        similar = self._open(
            model,
            model.similar_index_path,
            similar_params,
            "similar-items",
            self.settings.ann_similar_nprobe,
        )
        opened = None if similar is None else open_similar(model, similar)
        return model if opened is None else dataclasses.replace(model, similar_ann=opened)

    def _open(
        self,
        model: LoadedModel,
        path: str,
        section: dict[str, object],
        what: str,
        nprobe: int | None,
    ) -> AnnRetrieval | None:
        """One of the version's indexes, opened per the server's settings; None (logged)
        when it does not open: the index is an accelerator, never a reason to refuse."""
        where = f"{model.name} version {model.version}"
        try:
            params = IndexParams.from_dict(dict(section))
            if params.n_items > model.n_items:
                raise AnnError(
                    f"it indexes {params.n_items} items, the version has {model.n_items}"
                )
            index = read_index(path, params)
        except AnnError as exc:
            log.error("%s: %s index not used, scoring exactly: %s", where, what, exc)
            return None
        ivf = faiss.extract_index_ivf(index)
        if nprobe is not None:  # the server's setting over the manifest's
            ivf.nprobe = min(nprobe, ivf.nlist)
        log.info(
            "%s: %s index on (%s, %d items, nlist=%d, nprobe=%d, candidates=%d, %s)",
            where,
            what,
            params.kind,
            params.n_items,
            ivf.nlist,
            ivf.nprobe,
            self.settings.ann_candidates,
            calibrated_recall(section, int(ivf.nprobe)),
        )
        return AnnRetrieval(
            index, params, self.settings.ann_candidates, self.settings.ann_max_candidates
        )
