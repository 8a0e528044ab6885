"""Typed protocol options: read from KEY=VALUE strings, one default each, clear errors."""

from __future__ import annotations

import pytest

from training.data.interactions import Interactions
from training.protocols import (
    PROTOCOLS,
    ProtocolError,
    protocol,
    ratings_folds,
    ratings_random,
    ratings_split,
    strong_generalization,
)

FAST_MF = {"epochs": "2", "factors": "4", "batch_size": "256"}


def test_strings_are_read_as_the_declared_types() -> None:
    opts = ratings_split.Options.parse(
        {"train_fraction": "0.4", "default_rating": "3", "predict_cold_items": "yes"}
    )
    assert opts == ratings_split.Options(
        train_fraction=0.4, default_rating=3.0, predict_cold_items=True
    )
    folds = ratings_folds.Options.parse({"folds": " u1, u3 ,"})
    assert folds.folds == ("u1", "u3")
    sg = strong_generalization.Options.parse({"heldout_users": "10"})
    assert sg.heldout_users == 10 and sg.min_clicks == 5  # the rest keep their defaults


def test_defaults_are_declared_once_and_shown_in_the_help() -> None:
    assert ratings_random.Options() == ratings_random.Options.parse(None)
    assert ratings_random.Options.describe() == {
        "test_fraction": "share of ratings held out for test (default 0.1)",
        "valid_fraction": "share of the training part carved out for early stopping (default 0.05)",
        "default_rating": "prediction for a pair with an unseen user or item (default 3)",
    }
    assert "(default false)" in ratings_split.Options.describe()["predict_cold_items"]
    for p in PROTOCOLS.values():  # every option of every protocol has a help line with a default
        assert all("(default " in line for line in p.options.describe().values())


@pytest.mark.parametrize(
    ("name", "given", "message"),
    [
        ("ratings-random", {"tets_fraction": "0.2"}, r"unknown option\(s\) \['tets_fraction'\]"),
        ("weak-generalization", {"seed": "1"}, "known: none"),
        ("ratings-random", {"test_fraction": "ten percent"}, "'test_fraction': cannot read"),
        ("ratings-random", {"test_fraction": "1.5"}, "'test_fraction'.*between 0 and 1"),
        ("strong-generalization", {"heldout_users": "1.5"}, "'heldout_users': cannot read"),
        ("strong-generalization", {"heldout_users": "0"}, "'heldout_users'.*at least 1"),
        ("ratings-split", {"predict_cold_items": "maybe"}, "'predict_cold_items'.*true/false"),
        ("ratings-split", {"train_fraction": "0"}, "'train_fraction'.*above 0"),
        ("irgan", {"valid_fraction": "-0.1"}, "'valid_fraction'.*0 \\(none\\)"),
        ("ratings-folds", {"folds": ","}, "'folds'.*at least one fold"),
    ],
)
def test_bad_options_are_named_before_any_data_is_read(
    name: str, given: dict[str, str], message: str
) -> None:
    with pytest.raises(ProtocolError, match=message):
        protocol(name).run("biased-mf", "no-such-data", seeds=[0], options=given)


def test_typed_options_run_and_the_report_lists_what_changed(ratings_data: Interactions) -> None:
    run = protocol("ratings-random").run
    typed = run(
        "biased-mf",
        ratings_data,
        seeds=[0],
        overrides=FAST_MF,
        options=ratings_random.Options(test_fraction=0.2),
    )
    pairs = run(
        "biased-mf", ratings_data, seeds=[0], overrides=FAST_MF, options={"test_fraction": "0.2"}
    )
    assert typed.runs[0].metrics == pairs.runs[0].metrics
    assert typed.options == pairs.options == {"test_fraction": "0.2"}
    assert "--option test_fraction=0.2" in typed.command()
    with pytest.raises(ProtocolError, match="given to protocol 'ratings-split'"):
        protocol("ratings-split").run("biased-mf", ratings_data, options=ratings_random.Options())
