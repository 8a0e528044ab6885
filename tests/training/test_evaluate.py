"""Evaluation goes through a Scorer: tiny hand-written scorers whose rankings are known."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from training.data.interactions import Interactions
from training.evaluate import (
    EvaluationError,
    evaluate_ratings,
    evaluate_topk,
    rank,
    rating_validation,
    serving_baseline,
    topk_validation,
)
from training.metrics import ndcg_at_k, recall_at_k
from training.models.base import History, NotARatingModel, Scorer


class TableScorer(Scorer):
    """Known users score by a fixed (U, I) table; fold-in users by history @ ``sim`` (I, I)."""

    name = "table"

    def user_state(self, users: torch.Tensor, history: History) -> torch.Tensor:
        folded = history.to_dense() @ self.t["sim"]
        known = users >= 0
        folded[known] = self.t["table"][users[known]]
        return folded

    def score(self, state: torch.Tensor, items: torch.Tensor | None = None) -> torch.Tensor:
        return state if items is None else state[:, items]


class MeanScorer(Scorer):
    """Rating model: user's mean training rating + an item offset."""

    name = "mean"
    predicts_ratings = True

    def user_state(self, users: torch.Tensor, history: History) -> torch.Tensor:
        sums = torch.zeros(history.batch_size).index_add_(0, history.row_ids(), history.values)
        return (sums / history.lengths().clamp(min=1)).unsqueeze(1)

    def score(self, state: torch.Tensor, items: torch.Tensor | None = None) -> torch.Tensor:
        offset = self.t["offset"] if items is None else self.t["offset"][items]
        return state + offset.unsqueeze(0)


# 3 users x 5 items. Scores (higher first):
# user 0: items 4 > 3 > 2 > 1 > 0
# user 1: items 0 > 1 > 2 > 3 > 4
# user 2: no relevant item (skipped)
TABLE = torch.tensor(
    [[0.0, 1.0, 2.0, 3.0, 4.0], [4.0, 3.0, 2.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0, 1.0]]
)
SCORER = TableScorer({"n_items": 5}, {"table": TABLE, "sim": torch.eye(5)})
HISTORY = sp.csr_matrix(np.array([[0, 0, 0, 0, 1], [0, 0, 0, 0, 0], [1, 0, 0, 0, 0]], float))
RELEVANT = sp.csr_matrix(np.array([[0, 0, 1, 0, 0], [0, 1, 0, 0, 1], [0, 0, 0, 0, 0]], float))


def test_rank_masks_excluded_items_and_sorts() -> None:
    ranked = rank(SCORER, np.array([0, 1]), HISTORY[:2], k=3, exclude=HISTORY[:2], batch_size=1)
    np.testing.assert_array_equal(ranked, [[3, 2, 1], [0, 1, 2]])


def test_rank_folds_in_unknown_users_from_history() -> None:
    # sim = identity, so a fold-in user's best item is their own history item.
    ranked = rank(SCORER, np.array([-1]), HISTORY[2:], k=1)
    np.testing.assert_array_equal(ranked, [[0]])


def test_evaluate_topk_known_users_hand_computed() -> None:
    result = evaluate_topk(
        SCORER,
        HISTORY,
        RELEVANT,
        ks=(1, 2),
        metrics=("precision", "recall", "ndcg", "mrr", "hit", "coverage"),
        users=np.arange(3),
    )
    # user 0 after excluding item 4: ranks [3, 2, ...] -> relevant item 2 at rank 2.
    # user 1: ranks [0, 1, ...], relevant {1, 4} -> hit at rank 2.
    assert result["precision@1"] == pytest.approx(0.0)
    assert result["precision@2"] == pytest.approx(0.5)
    assert result["recall@2"] == pytest.approx((1.0 + 0.5) / 2)
    ndcg0 = (1 / math.log2(3)) / 1.0
    ndcg1 = (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    assert result["ndcg@2"] == pytest.approx((ndcg0 + ndcg1) / 2)
    assert result["mrr@2"] == pytest.approx(0.5)
    assert result["hit@1"] == pytest.approx(0.0)
    assert result["coverage@2"] == pytest.approx(4 / 5)  # {3, 2, 0, 1}


def test_evaluate_topk_liang_recall_and_no_exclusion() -> None:
    result = evaluate_topk(
        SCORER,
        HISTORY,
        RELEVANT,
        ks=(1,),
        metrics=("recall",),
        users=np.arange(3),
        exclude=None,
        recall_denominator="min",
    )
    # no masking: user 0 ranks item 4 first (not relevant); user 1 ranks 0 first (not relevant)
    assert result == {"recall@1": 0.0}


def test_evaluate_topk_default_users_fold_in() -> None:
    # users=None -> every row folds in: state = history @ sim; sim sends item 4 to item 2.
    sim = torch.zeros(5, 5)
    sim[4, 2] = 1.0
    scorer = TableScorer({"n_items": 5}, {"table": torch.zeros(3, 5), "sim": sim})
    relevant = sp.csr_matrix(np.array([[0, 0, 1, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]], float))
    result = evaluate_topk(scorer, HISTORY, relevant, ks=(1,), metrics=("precision",))
    assert result == {"precision@1": 1.0}  # only user 0 has relevant items; item 2 first


def test_topk_validation_selects_on_metric() -> None:
    validation = topk_validation(HISTORY, RELEVANT, metric="precision@2", users=np.arange(3))
    assert validation.metric == "precision@2" and validation.higher_is_better
    assert validation.evaluate(SCORER) == {"precision@2": pytest.approx(0.5)}


def test_topk_validation_reports_each_activity_segment_as_a_direct_computation() -> None:
    # 8 users x 30 items, histories of 0, 1, 3, 6, 12, 25 and 25 items (segments 0, 1-4,
    # 1-4, 5-19, 5-19, 20-99, 20-99) and one user with nothing relevant (skipped).
    rng = np.random.default_rng(0)
    n_users, n_items = 8, 30
    sizes = [0, 1, 3, 6, 12, 25, 25, 4]
    history = np.zeros((n_users, n_items))
    relevant = np.zeros((n_users, n_items))
    for u, size in enumerate(sizes):
        items = rng.permutation(n_items)
        history[u, items[:size]] = 1
        if u < 7:
            relevant[u, items[size : size + 2]] = 1
    table = torch.as_tensor(rng.random((n_users, n_items)), dtype=torch.float32)
    scorer = TableScorer({"n_items": n_items}, {"table": table, "sim": torch.eye(n_items)})
    hist, rel = sp.csr_matrix(history), sp.csr_matrix(relevant)
    validation = topk_validation(
        hist, rel, metric="ndcg@5", ks=(5,), metrics=("ndcg", "recall"), users=np.arange(8)
    )
    assert validation.evaluate_by_activity is not None
    overall, by_activity = validation.evaluate_by_activity(scorer)
    assert overall == validation.evaluate(scorer)  # the overall figures do not change
    masked = np.where(history > 0, -np.inf, table.numpy())
    ranked = np.argsort(-masked, axis=1, kind="stable")[:7, :5]
    ndcg = ndcg_at_k(ranked, rel[:7], 5)
    recall = recall_at_k(ranked, rel[:7], 5)
    got = {s.label: s for s in by_activity.segments}
    for label, members in {"0": [0], "1-4": [1, 2], "5-19": [3, 4], "20-99": [5, 6]}.items():
        assert got[label].users == len(members)
        assert got[label].metrics["ndcg@5"] == pytest.approx(ndcg[members].mean())
        assert got[label].metrics["recall@5"] == pytest.approx(recall[members].mean())
    assert got["100+"].users == 0 and got["100+"].metrics == {}


def test_rating_validation_reports_each_activity_segment_from_its_users_pairs() -> None:
    train, test = _ratings_data()
    scorer = MeanScorer({"n_items": 4}, {"offset": torch.zeros(4)})
    validation = rating_validation(train, test, metric="rmse", default_rating=3.0)
    assert validation.evaluate_by_activity is not None
    overall, by_activity = validation.evaluate_by_activity(scorer)
    assert overall == validation.evaluate(scorer)
    got = {s.label: s for s in by_activity.segments}
    # a and b have 2 training ratings each: (a, z) 3 vs 3, (b, y) 5 vs 4, (b, w) 3 vs 2.
    assert got["1-4"].users == 2
    assert got["1-4"].metrics == {
        "rmse": pytest.approx(math.sqrt(2 / 3)),
        "mae": pytest.approx(2 / 3),
        "n": 3.0,
        "n_default": 1.0,
    }
    # c has no training rating: (c, x) gets the default, 3 vs 1.
    assert got["0"].users == 1
    assert got["0"].metrics == {"rmse": 2.0, "mae": 2.0, "n": 1.0, "n_default": 1.0}


def _ratings_data() -> tuple[sp.csr_matrix, Interactions]:
    # users a, b, c; items x, y, z, w. c and w have no training rating.
    # train: a rated x=4, y=2 (mean 3); b rated x=5, z=5 (mean 5).
    both = Interactions.from_arrays(
        ["a", "a", "b", "b", "a", "b", "c", "b"],
        ["x", "y", "x", "z", "z", "y", "x", "w"],
        [4, 2, 5, 5, 3, 4, 1, 2],
    )
    train = both.subset(np.arange(8) < 4).to_csr()
    return train, both.subset(np.arange(8) >= 4)


def test_evaluate_ratings_uses_defaults_for_unseen_users_and_items() -> None:
    train, test = _ratings_data()
    scorer = MeanScorer(
        {"n_items": 4, "rating_range": [1.0, 5.0]}, {"offset": torch.tensor([0.0, 0.0, 0.5, 0.5])}
    )
    result = evaluate_ratings(scorer, train, test, default_rating=3.0)
    # items w, x, y, z. a: mean 3 -> (a, z) = 3 + 0.5 = 3.5 vs 3;
    # b: mean 5 -> (b, y) = 5.5 clipped to 5 vs 4; (c, x): unseen user -> 3 vs 1;
    # (b, w): unseen item -> 3 vs 2
    errors = np.array([0.5, 1.0, 2.0, 1.0])
    assert result["rmse"] == pytest.approx(math.sqrt(np.mean(errors**2)))
    assert result["mae"] == pytest.approx(errors.mean())
    assert result["n"] == 4 and result["n_default"] == 2


def test_rating_validation_is_lower_is_better() -> None:
    train, test = _ratings_data()
    scorer = MeanScorer({"n_items": 4}, {"offset": torch.zeros(4)})
    validation = rating_validation(train, test, metric="mae", default_rating=3.0)
    assert not validation.higher_is_better
    # (a, z) = 3 vs 3, (b, y) = 5 vs 4, defaults 3 vs 1 and 3 vs 2
    assert validation.evaluate(scorer)["mae"] == pytest.approx((0.0 + 1.0 + 2.0 + 1.0) / 4)


@pytest.mark.parametrize(("scale", "shift"), [(1.0, 0.0), (0.25, -0.25), (25.0, -25.0)])
def test_unpredictable_pairs_get_what_serving_answers_on_any_scale(
    scale: float, shift: float
) -> None:
    """1-5 stars, 0-1 and 0-100: a pair the model cannot predict gets serving's baseline
    (``prediction_baseline``: the user's mean training rating, else the training mean),
    not a constant 3 that lies outside a 0-1 scale."""
    train, test = _ratings_data()
    train.data = train.data * scale + shift
    test = dataclasses.replace(test, ratings=test.ratings * scale + shift)
    low, high = 1 * scale + shift, 5 * scale + shift
    scorer = MeanScorer({"n_items": 4, "rating_range": [low, high]}, {"offset": torch.zeros(4)})
    result = rating_validation(train, test, metric="rmse").evaluate(scorer)
    # (a, z): a's mean 3; (b, y): b's mean 5; (c, x): c has no training rating -> the
    # training mean (4 + 2 + 5 + 5) / 4 = 4; (b, w): w has none -> b's mean 5.
    predicted = np.array([3.0, 5.0, 4.0, 5.0]) * scale + shift
    truth = np.array([3.0, 4.0, 1.0, 2.0]) * scale + shift
    assert result["rmse"] == pytest.approx(math.sqrt(np.mean((predicted - truth) ** 2)))
    assert result["n_default"] == 2
    # The constant stays available to the paper protocols (AutoRec's code predicts 3).
    constant = evaluate_ratings(scorer, train, test, default_rating=3.0)
    assert constant["rmse"] != pytest.approx(result["rmse"])


def test_the_serving_baseline_of_an_empty_training_part_is_the_middle_of_the_range() -> None:
    empty = sp.csr_matrix((2, 3), dtype=np.float32)
    got = serving_baseline(empty, np.array([0, 1]), (0.0, 1.0))
    np.testing.assert_array_equal(got, [0.5, 0.5])


def test_evaluate_ratings_refuses_a_ranking_only_model() -> None:
    train, test = _ratings_data()
    scorer = TableScorer({"n_items": 4}, {"table": torch.zeros(3, 4), "sim": torch.eye(4)})
    with pytest.raises(NotARatingModel):
        evaluate_ratings(scorer, train, test)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: evaluate_topk(SCORER, HISTORY, RELEVANT, ks=(6,)), "outside"),
        (lambda: evaluate_topk(SCORER, HISTORY, RELEVANT, metrics=("auc",), ks=(1,)), "unknown"),
        (lambda: evaluate_topk(SCORER, HISTORY, RELEVANT[:2], ks=(1,)), "differ"),
        (lambda: evaluate_topk(SCORER, HISTORY, sp.csr_matrix((3, 5)), ks=(1,)), "no user"),
        (lambda: rank(SCORER, np.array([0]), HISTORY, k=1), "one row per user"),
        (lambda: topk_validation(HISTORY, RELEVANT, metric="ndcg"), "look like"),
        (lambda: rating_validation(HISTORY, None, metric="auc"), "rmse"),  # type: ignore[arg-type]
    ],
)
def test_bad_input_says_what_is_wrong(call, message: str) -> None:
    with pytest.raises(EvaluationError, match=message):
        call()
