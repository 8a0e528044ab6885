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


def _dense_and_one_event_users(n_dense: int, n_sparse: int) -> Interactions:
    """``n_dense`` users with 12 records each over 40 shared items, and ``n_sparse`` users
    with one record each (a shop where most visitors clicked once)."""
    rng = np.random.default_rng(1)
    users = [f"d{u}" for u in range(n_dense) for _ in range(12)]
    items = [f"i{i}" for _ in range(n_dense) for i in rng.choice(40, 12, replace=False)]
    users += [f"s{u}" for u in range(n_sparse)]
    items += [f"i{i}" for i in rng.integers(0, 40, n_sparse)]
    return Interactions.from_arrays(users, items, timestamps=np.arange(len(users)))


def test_users_too_sparse_to_validate_on_stay_in_training() -> None:
    # 30 users with 12 records and 300 with one: a held-out user with fewer than 5
    # records has nothing to recover, so drawing the held-out users among all 330 held
    # out ~30 one-event users, each lost to training and to validation alike, and the
    # split failed ("only 3 of the 33 held-out users ..."). The held-out users are drawn
    # among the users that can be validated on; the others train.
    data = _dense_and_one_event_users(30, 300)
    split = tuning_split(data, "topk", None, None, seed=0)
    sparse = np.array([data.user_ids.external(u).startswith("s") for u in split.train.users])
    assert sparse.sum() == 300  # every one-event user's record is in training
    assert split.record["validation_users"] == 5  # max(5, a tenth of the 30 dense users)
    assert split.record["users_too_sparse_to_validate"] == 300
    assert len(np.unique(split.train.users)) == 330 - 5


def test_the_validation_share_is_a_tenth_of_the_users_it_can_validate_on() -> None:
    data = _dense_and_one_event_users(200, 100)
    split = tuning_split(data, "topk", None, None, seed=0)
    assert split.record["validation_users"] == 20  # a tenth of 200, the sparse 100 not counted
    assert len(np.unique(split.train.users)) == 300 - 20


def test_too_few_users_with_enough_records_to_validate_on_is_refused_saying_so() -> None:
    with pytest.raises(TuningError, match="only 5 users have 5 or more records"):
        tuning_split(_dense_and_one_event_users(5, 40), "topk", None, None)
