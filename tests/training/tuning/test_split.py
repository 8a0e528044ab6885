"""The validation a tuning run selects on: drawn from the operator's data, refused when it cannot be."""

from __future__ import annotations

import numpy as np
import pytest

from tests.training.repeated_pairs import every_pair_twice, latest_copies
from training.data.interactions import Interactions
from training.models import model_class
from training.tuning import TuningError
from training.tuning.candidates import choose_models
from training.tuning.split import tuning_split


def test_held_out_users_are_folded_in_and_absent_from_training(ml100k_slice: Interactions) -> None:
    split = tuning_split(ml100k_slice, "topk", None, None, seed=0)
    assert split.record["kind"] == "users" and split.validation.metric == "ndcg@100"
    assert split.validation.higher_is_better
    train_users = set(np.unique(split.train.users).tolist())
    assert len(train_users) == 150 - split.record["validation_users"]
    model = model_class("ease")()
    report = model.fit(split.train, split.validation)
    assert 0.0 < report.best_metrics["ndcg@100"] <= 1.0
    assert "recall@100" in report.best_metrics


def test_time_split_trains_before_t_and_validates_after(ml100k_slice: Interactions) -> None:
    split = tuning_split(ml100k_slice, "topk", "time", "recall@20", seed=0)
    assert split.record["kind"] == "time" and split.validation.metric == "recall@20"
    assert int(split.train.timestamps.max()) < split.record["cutoff"]
    assert split.record["validation_users"] >= 5


def test_ratings_hold_out_random_ratings_and_select_on_rmse(ml100k_slice: Interactions) -> None:
    split = tuning_split(ml100k_slice, "ratings", None, None, seed=0)
    assert split.record["kind"] == "random" and split.validation.metric == "rmse"
    assert not split.validation.higher_is_better
    assert split.record["validation_ratings"] == round(0.1 * len(ml100k_slice))


def test_too_few_users_for_the_split_is_refused(ml100k_slice: Interactions) -> None:
    few = ml100k_slice.subset(ml100k_slice.users < 10)
    with pytest.raises(TuningError, match="10 users; tuning needs at least 20"):
        tuning_split(few, "topk", None, None)


def test_time_split_without_timestamps_is_refused(ml100k_slice: Interactions) -> None:
    timeless = Interactions(
        users=ml100k_slice.users,
        items=ml100k_slice.items,
        ratings=ml100k_slice.ratings,
        timestamps=np.zeros(len(ml100k_slice), dtype=ml100k_slice.timestamps.dtype),
        user_ids=ml100k_slice.user_ids,
        item_ids=ml100k_slice.item_ids,
        explicit=True,
    )
    with pytest.raises(TuningError, match="needs timestamps"):
        tuning_split(timeless, "topk", "time", None)


@pytest.mark.parametrize(
    ("task", "split", "metric", "message"),
    [
        ("topk", "random", None, "does not apply to --task topk"),
        ("topk", None, "rmse", "ndcg@K or recall@K"),
        ("ratings", None, "ndcg@10", "rmse or mae"),
    ],
)
def test_mismatched_split_or_metric_is_refused(
    ml100k_slice: Interactions, task: str, split: str | None, metric: str | None, message: str
) -> None:
    with pytest.raises(TuningError, match=message):
        tuning_split(ml100k_slice, task, split, metric)


def test_candidates_default_to_the_task_and_refuse_what_cannot_run(
    ml100k_slice: Interactions,
) -> None:
    assert "ease" in choose_models("topk", None, ml100k_slice)
    assert "convmf" not in choose_models("ratings", None, ml100k_slice)
    assert all(
        model_class(m).task == "ratings" for m in choose_models("ratings", None, ml100k_slice)
    )
    with pytest.raises(TuningError, match="unknown model"):
        choose_models("topk", ["ease", "nope"], ml100k_slice)
    with pytest.raises(TuningError, match="ease only rank items"):
        choose_models("ratings", ["ease", "biased-mf"], ml100k_slice)
    implicit = ml100k_slice.binarize(3.5)
    with pytest.raises(TuningError, match="needs explicit ratings"):
        choose_models("ratings", ["biased-mf"], implicit)


def test_closed_form_models_come_first_by_default(ml100k_slice: Interactions) -> None:
    assert choose_models("topk", None, ml100k_slice)[:2] == ["popularity", "ease"]


@pytest.mark.parametrize(
    ("task", "split", "model", "settings"),
    [
        ("topk", "users", "popularity", {}),
        ("topk", "time", "popularity", {}),
        ("ratings", "random", "pmf", {"epochs": 2}),
    ],
)
def test_a_pair_logged_twice_validates_as_the_pair_once(
    ml100k_slice: Interactions, task: str, split: str, model: str, settings: dict[str, int]
) -> None:
    """Every split is drawn over the latest record of each pair: record by record, a
    repeated pair had a copy in training and one to recover (tune's NDCG@40 on the bug
    hunt's log of pairs logged twice fell from 0.44 to 0.30)."""
    twice = tuning_split(every_pair_twice(ml100k_slice), task, split, None, seed=0)
    once = tuning_split(latest_copies(ml100k_slice), task, split, None, seed=0)
    assert twice.record == once.record
    for name in ("users", "items", "ratings", "timestamps"):
        np.testing.assert_array_equal(getattr(twice.train, name), getattr(once.train, name))
    cls = model_class(model)
    fitted = cls(cls.Config().with_overrides(settings))
    fitted.fit(once.train)
    scorer = fitted.to_scorer()
    assert twice.validation.evaluate(scorer) == once.validation.evaluate(scorer)


def test_held_out_users_whose_items_no_one_else_has_are_refused_saying_why() -> None:
    # A small shop with a long catalogue: 21 users, 30 records each among 5,000 items, so
    # nearly every item has one user. A held-out user's records of items no training user
    # has are dropped (no model can score them), and none keeps the 5 a user needs to be
    # validated on: the refusal says so and what would help, not just "enough records".
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(21), 30)
    items = np.concatenate([rng.choice(5000, 30, replace=False) for _ in range(21)])
    sparse = Interactions.from_arrays(
        [f"u{u}" for u in users], [f"i{i}" for i in items], timestamps=np.arange(len(users))
    )
    with pytest.raises(TuningError) as refused:
        tuning_split(sparse, "topk", None, None)
    message = str(refused.value)
    assert "of the 5 held-out users" in message
    assert "items that no training user has" in message
    assert "more records of items several users share" in message
