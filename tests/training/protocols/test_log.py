"""A protocol run on the service's own log (``--data db``) reads it as ``genrec train`` does."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import POSTGRES_ADMIN_URL, scratch_database
from tests.training.mixed_log import ratings_and_clicks, write_log
from training.protocols import protocol, strong_generalization
from training.protocols.common import LogSpec


@pytest.fixture
def mixed_log_url() -> Iterator[str]:
    """40 users, each with 12 ratings of 4 or 5 and 10 clicks (no rating)."""
    with scratch_database(POSTGRES_ADMIN_URL, "tune_split") as url:
        write_log(url, ratings_and_clicks(40, rated=12, clicked=10))
        yield url


def test_a_rating_protocol_on_a_mixed_log_measures_the_ratings_alone(
    mixed_log_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The log's clicks have no rating. Read whole, each was a rating of 1.0 (the bottom of
    # the 1-5 scale) in the training and the test part: biased-mf's RMSE on ratings that
    # are all 4 or 5 was 1.80. A rating model's read leaves them out, as genrec train's.
    monkeypatch.setenv("GENREC_DATABASE_URL", mixed_log_url)
    report = protocol("ratings-random").run("biased-mf", "db", seeds=[0], overrides={"epochs": "5"})
    assert report.dataset == "db"
    assert report.runs[0].metrics["rmse"] < 1.0


def test_the_strong_protocol_on_a_mixed_log_counts_its_clicks_as_clicks(
    mixed_log_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Liang's click rule (a rating above 3.5) read each unrated event as a rating of 1.0,
    # under the threshold: a top-k model measured on a log of ratings and clicks lost
    # every click. A click is a click; the rule applies to the ratings.
    monkeypatch.setenv("GENREC_DATABASE_URL", mixed_log_url)
    data, _ = strong_generalization.prepare(
        LogSpec(ratings_only=False), None, strong_generalization.Options(heldout_users=5)
    )
    assert len(data) == 40 * (12 + 10)  # every rating is 4 or 5, every click kept
