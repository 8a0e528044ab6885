"""A rating model in a top-k search on a log of ratings and clicks fits the ratings alone.

``genrec train`` reads the log for a rating model without its unrated rows (a click
read as a rating of 1.0 is the bottom of the scale); a top-k search reads every row
for its top-k candidates, so the read marks which rows are rated
(``Interactions.rated``) and a rating candidate fits those, judged on the same top-k
validation as every other candidate.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator

import numpy as np
import pytest

from tests.conftest import POSTGRES_ADMIN_URL, scratch_database
from tests.training.mixed_log import ratings_and_clicks, write_log
from training.data.interactions import Interactions
from training.data.log_reader import read_interaction_log
from training.models import model_class
from training.tuning.objective import validated_fit
from training.tuning.pruning import EpochPruning
from training.tuning.search import SearchSettings, open_search
from training.tuning.split import tuning_split

USERS, RATED, CLICKED = 40, 10, 8


@pytest.fixture(scope="module")
def mixed_log() -> Iterator[Interactions]:
    """The log read as a top-k search reads it: every row, the rated ones marked."""
    with scratch_database(POSTGRES_ADMIN_URL, "tune_split") as url:
        write_log(url, ratings_and_clicks(USERS, rated=RATED, clicked=CLICKED))
        yield read_interaction_log(url)


def test_the_read_marks_which_rows_carry_a_rating(mixed_log: Interactions) -> None:
    assert len(mixed_log) == USERS * (RATED + CLICKED)
    assert mixed_log.rated is not None and int(mixed_log.rated.sum()) == USERS * RATED
    rated = mixed_log.rated_part()
    assert len(rated) == USERS * RATED and set(rated.ratings.tolist()) == {4.0, 5.0}
    assert rated.item_ids == mixed_log.item_ids  # the same index space: scored alike


def test_a_rating_model_in_a_topk_search_fits_the_ratings_alone(mixed_log: Interactions) -> None:
    split = tuning_split(mixed_log, "topk", None, "ndcg@10", seed=0)
    pruning = EpochPruning(None, "ndcg@10", True, lambda: 0.0, math.inf)
    value, _, _ = validated_fit("biased-mf", {"epochs": 3}, split, pruning)
    # The same seeded fit by hand: on the rated rows it gives the trial's figure, on every
    # row (each click a rating of 1.0, as the trial fitted before) another.
    cls = model_class("biased-mf")
    validation = split.validation_for("biased-mf")
    figures = {}
    for name, rows in (("rated", split.train.rated_part()), ("every", split.train)):
        model = cls(cls.Config().with_overrides({"epochs": 3}))
        figures[name] = model.fit(rows, validation).best_metrics["ndcg@10"]
    assert figures["rated"] != figures["every"]
    assert value == figures["rated"]


@pytest.mark.parametrize("kind", ["users", "time"])
def test_a_rating_model_is_validated_on_its_users_ratings_as_serving_folds_them_in(
    mixed_log: Interactions, kind: str
) -> None:
    # Serving folds a rating model's user in from their ratings alone (a click only marks
    # its item seen: app.serving.state.history_value); the validation folded every click
    # in as a rating of 1.0. A rating model gets the same validation with its users'
    # ratings as the input and every record of theirs excluded from the ranking.
    # The log was written user after user: for a time split, its events interleaved.
    times = np.random.default_rng(0).permutation(mixed_log.timestamps)
    data = dataclasses.replace(mixed_log, timestamps=times)
    split = tuning_split(data, "topk", kind, "ndcg@10", seed=0)
    assert split.validation_for("ease") is split.validation
    rated = split.validation_for("biased-mf")
    assert rated is not split.validation and rated.metric == split.validation.metric
    cls = model_class("biased-mf")
    model = cls(cls.Config().with_overrides({"epochs": 3}))
    model.fit(split.train.rated_part())
    scorer = model.to_scorer()
    if kind == "users":  # held-out users are folded in from that input (``time``'s are known)
        assert rated.evaluate(scorer) != split.validation.evaluate(scorer)


def test_a_rating_model_is_left_out_of_a_topk_search_on_a_log_without_ratings() -> None:
    # No event carries a rating: each reads as 1.0. biased-mf fits rating values on the
    # observed pairs only, so with every target 1.0 it learns a constant and ranks by
    # noise; it used to take its share of the budget all the same. It is left out with
    # one line saying why; AutoRec reads implicit data as every entry a target (zeros
    # for the items not clicked) and stays, as do the top-k models.
    clicks = [(u, i) for u, i, _ in ratings_and_clicks(USERS, rated=0, clicked=12)]
    implicit = Interactions.from_arrays([u for u, _ in clicks], [i for _, i in clicks])
    assert not implicit.explicit
    search = open_search(
        implicit,
        SearchSettings(task="topk", models=["popularity", "biased-mf", "pmf", "i-autorec"]),
    )
    assert search.models == ["popularity", "i-autorec"]
    assert set(search.left_out) == {"biased-mf", "pmf"}
    assert "every training rating is 1" in search.left_out["biased-mf"]
    assert "\n" not in search.left_out["biased-mf"]
