"""``training.segments``: users grouped by training interactions, figures per segment."""

from __future__ import annotations

import json

import numpy as np
import pytest

from training.segments import (
    EDGES,
    SegmentError,
    assign,
    by_activity,
    from_record,
    labels,
    ratings_by_activity,
)


def test_the_default_segments_are_labelled_by_their_interaction_counts() -> None:
    assert labels() == ["0", "1-4", "5-19", "20-99", "100+"]
    assert labels((0, 3)) == ["0-2", "3+"]


def test_each_count_falls_in_the_segment_whose_edges_hold_it() -> None:
    counts = np.array([0, 1, 4, 5, 19, 20, 99, 100, 5000])
    assert assign(counts).tolist() == [0, 1, 1, 2, 2, 3, 3, 4, 4]


@pytest.mark.parametrize("edges", [(), (1, 5), (0, 5, 5), (0, 7, 3)])
def test_edges_that_do_not_start_at_zero_and_increase_are_refused(
    edges: tuple[int, ...],
) -> None:
    with pytest.raises(SegmentError, match="start at 0 and increase"):
        assign(np.array([1]), edges)


def test_negative_counts_are_refused() -> None:
    with pytest.raises(SegmentError, match="negative"):
        assign(np.array([-1]))


def test_segment_means_are_the_means_of_their_users_and_empty_segments_stay() -> None:
    activity = np.array([2, 3, 50, 7, 60, 61])
    ndcg = np.array([0.1, 0.3, 0.5, 0.9, np.nan, 0.7])  # NaN: undefined, left out
    result = by_activity(activity, {"ndcg@10": ndcg})
    assert result.edges == EDGES
    got = {s.label: (s.users, s.metrics) for s in result.segments}
    assert got["0"] == (0, {})
    assert got["1-4"] == (2, {"ndcg@10": pytest.approx(0.2)})
    assert got["5-19"] == (1, {"ndcg@10": pytest.approx(0.9)})
    assert got["20-99"] == (3, {"ndcg@10": pytest.approx(0.6)})
    assert got["100+"] == (0, {})


def test_values_must_be_one_per_user() -> None:
    with pytest.raises(SegmentError, match="2 values for 3 users"):
        by_activity(np.array([1, 2, 3]), {"ndcg@10": np.array([0.1, 0.2])})


def test_rating_segments_measure_the_pairs_of_their_users() -> None:
    activity = np.array([1, 30, 0])  # per user: training ratings
    users = np.array([0, 0, 1, 1, 1, 2])
    predicted = np.array([3.0, 4.0, 2.0, 5.0, 4.0, 3.5])
    actual = np.array([4.0, 4.0, 3.0, 5.0, 2.0, 3.5])
    defaulted = np.array([False, False, False, False, False, True])
    got = {
        s.label: s
        for s in ratings_by_activity(activity, users, predicted, actual, defaulted).segments
    }
    assert got["1-4"].users == 1
    assert got["1-4"].metrics["rmse"] == pytest.approx(np.sqrt(1 / 2))
    assert got["1-4"].metrics["mae"] == pytest.approx(0.5)
    assert got["20-99"].users == 1
    assert got["20-99"].metrics["rmse"] == pytest.approx(np.sqrt(5 / 3))
    assert got["20-99"].metrics["n"] == 3
    assert got["0"].metrics == {"rmse": 0.0, "mae": 0.0, "n": 1.0, "n_default": 1.0}
    assert got["5-19"].users == 0 and got["5-19"].metrics == {}


def test_the_record_survives_json_and_a_missing_or_bad_one_reads_as_none() -> None:
    result = by_activity(np.array([2, 50]), {"recall@10": np.array([0.5, 1.0])})
    record = json.loads(json.dumps(result.to_dict()))
    assert from_record(record) == result
    assert from_record(None) is None
    assert from_record({"edges": [0, 1], "segments": [{"label": "0"}]}) is None
    assert from_record({"edges": "x"}) is None


def test_the_table_puts_the_user_count_beside_each_segment_s_figures() -> None:
    result = ratings_by_activity(
        np.array([2, 300]),
        np.array([0, 1, 1]),
        np.array([3.0, 4.0, 5.0]),
        np.array([3.0, 5.0, 5.0]),
        np.array([False, True, False]),
    )
    table = result.to_markdown().splitlines()
    assert table[0] == "| interactions per user | users | rmse | mae | n | n_default |"
    assert "| 1-4 | 1 | 0.0000 | 0.0000 | 1 | 0 |" in table
    assert "| 100+ | 1 | 0.7071 | 0.5000 | 2 | 1 |" in table
    assert "| 5-19 | 0 | – | – | – | – |" in table


def test_a_segment_whose_users_all_lack_a_metric_has_no_figure_not_zero() -> None:
    # np.nanmean of all-NaN values is NaN: the segment's figure is undefined (null in
    # the manifest, a dash on the page), not a measured 0.0 that reads as the worst.
    activity = np.array([2, 3, 50])
    ndcg = np.array([np.nan, np.nan, 0.5])
    result = by_activity(activity, {"ndcg@10": ndcg})
    got = {s.label: s for s in result.segments}
    assert got["1-4"].users == 2
    assert np.isnan(got["1-4"].metrics["ndcg@10"])
    assert got["20-99"].metrics["ndcg@10"] == pytest.approx(0.5)
    segments = result.to_dict()["segments"]
    assert [s["metrics"] for s in segments if s["label"] == "1-4"] == [{"ndcg@10": None}]


@pytest.mark.parametrize(
    "text",
    [
        '{"edges": [0], "segments": [{"label": "0", "users": Infinity, "metrics": {}}]}',
        '{"edges": [Infinity], "segments": []}',
        '{"edges": [0], "segments": [{"label": "0", "users": 1e999, "metrics": {}}]}',
    ],
)
def test_a_record_with_an_infinite_count_reads_as_none_not_an_error(text: str) -> None:
    # json.loads takes Infinity (and 1e999 as inf); int() of it raises OverflowError.
    assert from_record(json.loads(text)) is None
