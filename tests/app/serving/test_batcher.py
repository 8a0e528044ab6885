"""Micro-batching: hand-computed batch ranking, concurrency -> one batch, drain on close."""

from __future__ import annotations

import asyncio
import threading
import time
from types import SimpleNamespace

import faiss
import numpy as np
import pytest
import torch

from app.core.metrics import Metrics
from app.serving import batcher as batcher_module
from app.serving.batcher import BatcherClosed, RankJob, ScoreBatcher, process_batch, rank_batch
from app.serving.state import UserContext

# Item vectors of a 5-item catalog; score = Q . state (a linear scorer).
Q = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0], [0.5, 0.5]])
NONE = np.zeros(0, dtype=np.int64)


class _LinearScorer:
    def __init__(self) -> None:
        self.calls: list[int] = []  # batch size of each score call

    def score(self, state: torch.Tensor, items: torch.Tensor | None = None) -> torch.Tensor:
        self.calls.append(state.shape[0])
        return state @ Q.T


def _model() -> SimpleNamespace:
    return SimpleNamespace(
        name="linear",
        version="1",
        device=torch.device("cpu"),
        n_items=5,
        popularity=np.array([3.0, 1.0, 0.0, 2.0, 5.0], dtype=np.float32),
        scorer=_LinearScorer(),
        ann=None,  # no retrieval index: the exact path
        similar_ann=None,
    )


def _job(state: list[float] | None, k: int = 5, banned=NONE, allowed=None) -> RankJob:  # type: ignore[no-untyped-def]
    tensor = None if state is None else torch.tensor([state])
    return RankJob(state=tensor, banned=np.asarray(banned, dtype=np.int64), allowed=allowed, k=k)


def test_rows_are_ranked_independently_with_their_own_masks_and_k() -> None:
    model = _model()
    jobs = [
        _job([1.0, 0.0], k=2),  # scores 1, 0, 1, -1, .5 -> items 0 and 2 tie first
        _job([0.0, 2.0], k=3, banned=[2]),  # 0, 2, (2 masked), 0, 1 -> 1, 4, then 0 or 3
        _job(None, k=2, banned=[4]),  # popularity 3, 1, 0, 2, (5 masked) -> 0, 3
        _job([1.0, 1.0], k=5, allowed=np.array([3, 4])),  # only 3 (-1) and 4 (1) -> 4, 3
    ]
    ranked = rank_batch(model, jobs)
    assert model.scorer.calls == [3]  # one score call for the three personal rows
    assert sorted(ranked[0].items.tolist()) == [0, 2]
    assert ranked[1].items.tolist()[:2] == [1, 4] and 2 not in ranked[1].items.tolist()
    assert ranked[2].items.tolist() == [0, 3]
    assert ranked[2].scores.tolist() == [3.0, 2.0]
    assert ranked[3].items.tolist() == [4, 3] and ranked[3].scores.tolist() == [1.0, -1.0]


def test_fewer_than_k_unmasked_items_returns_only_those() -> None:
    ranked = rank_batch(_model(), [_job([1.0, 0.0], k=5, banned=[0, 1, 2, 3])])
    assert ranked[0].items.tolist() == [4]
    assert rank_batch(_model(), [_job([1.0, 0.0], allowed=NONE)])[0].items.tolist() == []


def test_concurrent_requests_are_scored_as_one_batch() -> None:
    model = _model()
    metrics = Metrics()

    async def scenario() -> list[list[int]]:
        batcher = ScoreBatcher(model, metrics, max_batch=8, wait_s=0.05)  # type: ignore[arg-type]
        jobs = [_job([float(i), 1.0], k=1) for i in range(6)]
        results = await asyncio.gather(*(batcher.rank(job) for job in jobs))
        await batcher.close()
        return [r.items.tolist() for r in results]

    results = asyncio.run(scenario())
    assert model.scorer.calls == [6]
    assert results[0] == [1] and results[5] == [2]  # (0,1) prefers item 1; (5,1) item 2
    assert metrics.batch_size.labels(model="linear")._sum.get() == 6  # type: ignore[attr-defined]


def _faiss_threads_while_scoring(search_threads: int) -> list[int]:
    """FAISS's thread count as the scoring thread sees it, once per score call."""
    model = _model()
    seen: list[int] = []
    score = model.scorer.score

    def probed(state: torch.Tensor, items: torch.Tensor | None = None) -> torch.Tensor:
        seen.append(faiss.omp_get_max_threads())
        return score(state, items)

    model.scorer.score = probed

    async def scenario() -> None:
        batcher = ScoreBatcher(model, Metrics(), search_threads=search_threads)  # type: ignore[arg-type]
        await batcher.rank(_job([1.0, 0.0]))
        await batcher.close()

    asyncio.run(scenario())
    return seen


def test_the_scoring_thread_searches_with_the_configured_faiss_threads() -> None:
    # OpenMP keeps its thread count per thread: a count set on the loop's thread never
    # reached the scoring thread, where the index is searched. 0 keeps OpenMP's default.
    default: list[int] = []
    fresh = threading.Thread(target=lambda: default.append(faiss.omp_get_max_threads()))
    fresh.start()
    fresh.join()
    assert _faiss_threads_while_scoring(0) == default
    assert _faiss_threads_while_scoring(1) == [1]
    assert _faiss_threads_while_scoring(default[0] + 1) == [default[0] + 1]


def test_a_lone_request_on_a_quiet_batcher_does_not_wait_out_the_window() -> None:
    model = _model()

    async def scenario() -> tuple[float, list[int]]:
        batcher = ScoreBatcher(model, Metrics(), max_batch=2, wait_s=10.0)  # type: ignore[arg-type]
        started = time.perf_counter()
        for _ in range(3):  # one at a time, like a single connection
            await asyncio.wait_for(batcher.rank(_job([1.0, 0.0])), timeout=5)
        elapsed = time.perf_counter() - started
        # Under load (a full batch of 2 just ran) the window applies again to a lone job.
        two = [asyncio.ensure_future(batcher.rank(_job([1.0, 0.0]))) for _ in range(2)]
        await asyncio.wait_for(asyncio.gather(*two), timeout=5)
        pending = [asyncio.ensure_future(batcher.rank(_job([1.0, 0.0]))) for _ in range(1)]
        await asyncio.sleep(0.2)
        waited = not pending[0].done()
        await batcher.close()
        assert waited
        return elapsed, model.scorer.calls

    elapsed, calls = asyncio.run(scenario())
    assert elapsed < 5 and calls == [1, 1, 1, 2, 1]


def test_max_batch_splits_the_queue() -> None:
    model = _model()

    async def scenario() -> None:
        batcher = ScoreBatcher(model, Metrics(), max_batch=4, wait_s=10.0)  # type: ignore[arg-type]
        # A full batch goes at once: 8 jobs under a 10 s window finish without waiting it out.
        await asyncio.wait_for(
            asyncio.gather(*(batcher.rank(_job([1.0, 0.0])) for _ in range(8))), timeout=5
        )
        await batcher.close()

    asyncio.run(scenario())
    assert model.scorer.calls == [4, 4]


def test_close_scores_what_is_queued_then_refuses_new_jobs() -> None:
    model = _model()

    async def scenario() -> tuple[int, BaseException | None]:
        batcher = ScoreBatcher(model, Metrics(), max_batch=64, wait_s=10.0)  # type: ignore[arg-type]
        queued = [asyncio.ensure_future(batcher.rank(_job([1.0, 0.0]))) for _ in range(3)]
        await asyncio.sleep(0)  # the jobs are queued, the 10 s window is running
        await asyncio.wait_for(batcher.close(), timeout=5)  # flushes without waiting it out
        done = sum(1 for f in queued if f.done() and f.exception() is None)
        try:
            await batcher.rank(_job([1.0, 0.0]))
        except BatcherClosed as exc:
            return done, exc
        return done, None

    done, refused = asyncio.run(scenario())
    assert done == 3 and isinstance(refused, BatcherClosed)


def test_a_scoring_error_reaches_its_waiter_and_the_loop_survives() -> None:
    model = _model()
    metrics = Metrics()

    async def scenario() -> list[int]:
        batcher = ScoreBatcher(model, metrics, max_batch=8, wait_s=0.01)  # type: ignore[arg-type]
        bad = _job([1.0, 0.0, 3.0])  # wrong state width: the matrix product fails
        with pytest.raises(RuntimeError):
            await batcher.rank(bad)
        ok = await batcher.rank(_job([0.0, 1.0], k=1))
        await batcher.close()
        return ok.items.tolist()

    assert asyncio.run(scenario()) == [1]
    assert model.scorer.calls == [1, 1]  # a failed batch of one is not scored again
    assert metrics.failed_jobs.labels(model="linear")._value.get() == 1  # type: ignore[attr-defined]


def test_a_job_that_fails_alone_does_not_fail_the_rest_of_its_batch() -> None:
    model = _model()
    metrics = Metrics()

    async def scenario() -> list[object]:
        batcher = ScoreBatcher(model, metrics, max_batch=8, wait_s=0.05)  # type: ignore[arg-type]
        jobs = [_job([1.0, 0.0], k=1), _job([1.0, 0.0, 3.0]), _job([0.0, 1.0], k=1)]
        answers = await asyncio.gather(*(batcher.rank(job) for job in jobs), return_exceptions=True)
        await batcher.close()
        return answers

    first, bad, last = asyncio.run(scenario())
    assert isinstance(bad, RuntimeError)  # its state's width does not fit the items
    assert not isinstance(first, BaseException) and first.items.tolist() == [0]
    assert not isinstance(last, BaseException) and last.items.tolist() == [1]
    # The batch of three failed as a whole (torch.cat of mismatched widths, before any
    # score call), then each job was scored alone; the bad one failed at its product.
    assert model.scorer.calls == [1, 1, 1]
    assert metrics.failed_jobs.labels(model="linear")._value.get() == 1  # type: ignore[attr-defined]


class _RatingScorer(_LinearScorer):
    def predict(self, state: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return (state @ Q.T)[:, items] + 3.0  # a rating: 3 + the linear score


def test_prediction_jobs_share_the_batch_resolution_and_rate_their_own_items() -> None:
    model = _model()
    model.scorer = _RatingScorer()
    states = {"a": torch.tensor([[1.0, 0.0]]), "b": torch.tensor([[0.0, 2.0]]), "new": None}
    resolved: list[list[str]] = []

    def resolve(_model: object, user_ids: list[str]) -> list[UserContext]:
        resolved.append(user_ids)
        return [UserContext(states[u], seen=np.array([0]), folded_in=False) for u in user_ids]

    jobs = [
        RankJob(None, NONE, None, 0, user_id="a", predict=np.array([2, 3])),
        RankJob(None, NONE, None, 2, user_id="b"),  # ranked, its seen item 0 banned
        RankJob(None, NONE, None, 0, user_id="new", predict=np.array([1])),
        RankJob(None, NONE, None, 0, user_id="b", predict=np.array([], dtype=np.int64)),
    ]
    results = process_batch(model, jobs, resolve)  # type: ignore[arg-type]
    assert resolved == [["a", "b", "new", "b"]]  # one resolution for the whole batch
    assert results[0].items.tolist() == [2, 3] and results[0].scores.tolist() == [4.0, 2.0]
    assert sorted(results[1].items.tolist()) == [1, 2]  # both score 2; item 0 (seen) banned
    assert results[2].scores.size == 0  # no state: the caller answers the baseline
    assert results[3].scores.size == 0
    assert [r.context is not None for r in results] == [True] * 4


class _CountingRatingScorer(_RatingScorer):
    def __init__(self) -> None:
        super().__init__()
        self.predicted: list[tuple[int, int]] = []  # (rows, items) of each predict call

    def predict(self, state: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        self.predicted.append((state.shape[0], items.shape[0]))
        return super().predict(state, items)


def test_a_batch_s_predictions_are_one_call_and_equal_each_job_rated_alone() -> None:
    """Overlapping, repeated and unordered item lists: each job gets its own items' ratings,
    in its order, from one ``predict`` over the batch's items."""
    model = _model()
    model.scorer = _CountingRatingScorer()
    asked = {"a": [4, 0, 4], "b": [0, 3], "c": [2], "d": [1, 0, 2, 3, 4]}
    states = {
        "a": torch.tensor([[1.0, 0.0]]),
        "b": torch.tensor([[0.0, 2.0]]),
        "c": torch.tensor([[-1.0, 0.5]]),
        "d": torch.tensor([[0.3, 0.7]]),
    }

    def resolve(_model: object, user_ids: list[str]) -> list[UserContext]:
        return [UserContext(states[u], NONE, folded_in=False) for u in user_ids]

    jobs = [RankJob(None, NONE, None, 0, user_id=u, predict=np.array(i)) for u, i in asked.items()]
    results = process_batch(model, jobs, resolve)  # type: ignore[arg-type]
    assert model.scorer.predicted == [(4, 11)]  # four users, their eleven items
    for (user, items), result in zip(asked.items(), results, strict=True):
        alone = (states[user] @ Q.T)[0, items] + 3.0
        assert result.items.tolist() == items
        np.testing.assert_allclose(result.scores, alone.numpy(), rtol=1e-6)


def test_predictions_too_many_to_rate_in_one_product_are_split(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A call is at most ``PREDICT_CELLS`` ratings (jobs x their items): a big request
    gets a call of its own instead of multiplying every other job's items."""
    monkeypatch.setattr(batcher_module, "PREDICT_CELLS", 12)
    model = _model()
    model.scorer = _CountingRatingScorer()
    asked = [[0, 1], [2], [0, 1, 2, 3, 4, 0, 1], [3, 4]]
    state = torch.tensor([[1.0, -0.5]])

    def resolve(_model: object, user_ids: list[str]) -> list[UserContext]:
        return [UserContext(state, NONE, folded_in=False) for _ in user_ids]

    jobs = [RankJob(None, NONE, None, 0, user_id="u", predict=np.array(i)) for i in asked]
    results = process_batch(model, jobs, resolve)  # type: ignore[arg-type]
    # (1, 2) then (2, 3) fit; adding the 7-item job (3 x 10) would not, nor would it
    # with the last (2 x 9): each of them goes alone or with what follows within 12.
    assert model.scorer.predicted == [(2, 3), (1, 7), (1, 2)]
    for items, result in zip(asked, results, strict=True):
        np.testing.assert_allclose(result.scores, ((state @ Q.T)[0, items] + 3.0).numpy())


class _FoldInScorer(_LinearScorer):
    """Folds a history in as the value-weighted sum of its items' vectors."""

    def __init__(self) -> None:
        super().__init__()
        self.fold_ins: list[int] = []  # batch size of each user_state call

    def user_state(self, users: torch.Tensor, history) -> torch.Tensor:  # type: ignore[no-untyped-def]
        self.fold_ins.append(int(users.shape[0]))
        rows = []
        for b in range(users.shape[0]):
            lo, hi = int(history.indptr[b]), int(history.indptr[b + 1])
            weights = history.values[lo:hi].unsqueeze(1)
            rows.append((Q[history.indices[lo:hi]] * weights).sum(dim=0))
        return torch.stack(rows)


def test_ad_hoc_histories_are_folded_in_together_with_the_batch_s_users() -> None:
    """One ``user_state`` call folds in every ad-hoc history of a batch; each job's history
    items are banned when it excludes seen items, and a history with nothing the model can
    use gets the popularity row."""
    model = _model()
    model.scorer = _FoldInScorer()
    model.predicts_ratings, model.rating_range = False, (0.0, 1.0)
    resolved: list[list[str]] = []

    def resolve(_model: object, user_ids: list[str]) -> list[UserContext]:
        resolved.append(user_ids)
        return [UserContext(torch.tensor([[1.0, 0.0]]), NONE, folded_in=False) for _ in user_ids]

    jobs = [
        RankJob(None, NONE, None, 2, events=[(0, None)]),  # state Q[0] = (1, 0); 0 banned
        RankJob(None, NONE, None, 5, user_id="known"),
        RankJob(None, NONE, None, 2, events=[(1, None)], exclude_seen=False),  # (0, 1)
        RankJob(None, NONE, None, 3, events=[]),  # nothing to fold in: popularity
    ]
    results = process_batch(model, jobs, resolve)  # type: ignore[arg-type]
    assert model.scorer.fold_ins == [2]  # both histories in one call
    assert resolved == [["known"]]
    first, known, unbanned, empty = results
    assert first.items.tolist() == [2, 4] and first.context is not None  # 0 seen: banned
    assert first.context.folded_in and first.context.seen.tolist() == [0]
    assert known.items.tolist()[:2] == [0, 2]  # the resolved user, seen set empty
    assert unbanned.items.tolist() == [1, 2]  # its own item is kept: exclude_seen=False
    assert empty.context is not None and empty.context.state is None
    assert empty.items.tolist() == [4, 0, 3]  # the popularity order
