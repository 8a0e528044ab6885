"""Splits are disjoint, cover the data, keep id maps, respect ratios and repeat with a seed."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from training.data import splits as S
from training.data.interactions import Interactions


def _synthetic(n_users: int = 30, n_items: int = 40, per_user: int = 12, seed: int = 0):
    rng = np.random.default_rng(seed)
    users, items, ratings, times = [], [], [], []
    for u in range(n_users):
        chosen = rng.choice(n_items, size=per_user, replace=False)
        users += [f"u{u}"] * per_user
        items += [f"i{i}" for i in chosen]
        ratings += list(rng.integers(1, 6, size=per_user))
        times += list(rng.integers(0, 1000, size=per_user))
    return Interactions.from_arrays(users, items, ratings, times)


def _keys(part: Interactions) -> set[tuple[int, int, int]]:
    return set(zip(part.users.tolist(), part.items.tolist(), part.timestamps.tolist(), strict=True))


def _assert_partition(data: Interactions, parts: list[Interactions]) -> None:
    assert sum(len(p) for p in parts) == len(data)
    union: set[tuple[int, int, int]] = set()
    for p in parts:
        assert p.user_ids is data.user_ids and p.item_ids is data.item_ids
        keys = _keys(p)
        assert not keys & union, "parts overlap"
        union |= keys
    assert union == _keys(data)


DATA = _synthetic()


@pytest.mark.parametrize("ratios", [(0.9, 0.1), (0.8, 0.1, 0.1), (0.6, 0.2, 0.2)])
def test_random_split_partitions_with_exact_sizes(ratios: tuple[float, ...]) -> None:
    parts = S.random_split(DATA, ratios, seed=3)
    _assert_partition(DATA, parts)
    for part, r in zip(parts, ratios, strict=True):
        assert abs(len(part) - r * len(DATA)) <= 1


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=200),
    weights=st.lists(st.integers(min_value=1, max_value=10), min_size=2, max_size=4),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_random_split_sizes_property(n: int, weights: list[int], seed: int) -> None:
    data = Interactions.from_arrays(np.arange(n) % 7, np.arange(n), timestamps=np.arange(n))
    ratios = tuple(w / sum(weights) for w in weights)
    parts = S.random_split(data, ratios, seed)
    _assert_partition(data, parts)
    for part, r in zip(parts, ratios, strict=True):
        assert abs(len(part) - r * n) <= 1


def test_random_split_is_seeded() -> None:
    a = S.random_split(DATA, (0.8, 0.2), seed=1)
    b = S.random_split(DATA, (0.8, 0.2), seed=1)
    c = S.random_split(DATA, (0.8, 0.2), seed=2)
    assert _keys(a[1]) == _keys(b[1])
    assert _keys(a[1]) != _keys(c[1])


def test_per_user_holdout_fraction_per_user() -> None:
    train, test = S.per_user_holdout(DATA, 0.25, seed=0)
    _assert_partition(DATA, [train, test])
    held = np.bincount(test.users, minlength=DATA.n_users)
    np.testing.assert_array_equal(held, np.full(DATA.n_users, 3))  # round(0.25 * 12)


def test_per_user_holdout_min_per_user_and_tiny_users() -> None:
    # user a: 1 record (keeps it), user b: 3 records (0.1*3 rounds to 0 -> min 1 held out).
    data = Interactions.from_arrays(["a", "b", "b", "b"], ["x", "x", "y", "z"])
    train, test = S.per_user_holdout(data, 0.1, seed=0, min_per_user=1)
    assert test.users.tolist() == [data.user_ids.index("b")]
    assert len(train) == 3


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**16), fraction=st.floats(0.05, 0.95))
def test_per_user_holdout_keeps_a_training_record_per_user(seed: int, fraction: float) -> None:
    train, test = S.per_user_holdout(DATA, fraction, seed)
    _assert_partition(DATA, [train, test])
    assert set(np.unique(train.users)) == set(np.unique(DATA.users))


def test_leave_one_out_by_time_holds_out_latest() -> None:
    data = Interactions.from_arrays(
        ["a", "a", "a", "b", "c", "c"], ["x", "y", "z", "x", "x", "y"], None, [5, 9, 1, 3, 2, 2]
    )
    train, test = S.leave_one_out(data, by="time", seed=0)
    _assert_partition(data, [train, test])
    got = {
        data.user_ids.external(u): data.item_ids.external(i)
        for u, i in zip(test.users, test.items, strict=True)
    }
    assert got["a"] == "y"  # latest (t=9)
    assert "b" not in got  # a single record stays in train
    assert got["c"] in {"x", "y"}  # tie broken by the seed


def test_leave_one_out_random_one_per_user_and_seeded() -> None:
    train, test = S.leave_one_out(DATA, by="random", seed=4)
    _assert_partition(DATA, [train, test])
    np.testing.assert_array_equal(np.bincount(test.users), np.ones(DATA.n_users))
    again = S.leave_one_out(DATA, by="random", seed=4)[1]
    assert _keys(again) == _keys(test)


def test_temporal_split_by_fraction_and_cutoff() -> None:
    train, test = S.temporal_split(DATA, fraction=0.2)
    _assert_partition(DATA, [train, test])
    assert len(test) == round(0.2 * len(DATA))
    assert train.timestamps.max() <= test.timestamps.min()
    train, test = S.temporal_split(DATA, cutoff=500)
    assert train.timestamps.max() < 500 <= test.timestamps.min()


def _clicks_with_rare_items() -> Interactions:
    data = _synthetic(n_users=40, n_items=30, per_user=10, seed=1)
    return data


def test_strong_generalization_matches_liang_preprocessing() -> None:
    data = _clicks_with_rare_items()
    split = S.strong_generalization(data, n_valid_users=5, n_test_users=6, seed=7)
    parts = [
        split.train,
        split.valid_fold_in,
        split.valid_heldout,
        split.test_fold_in,
        split.test_heldout,
    ]
    for p in parts:  # one shared id map
        assert p.item_ids is split.train.item_ids and p.user_ids is data.user_ids
    train_users = set(np.unique(split.train.users))
    valid_users = set(np.unique(split.valid_fold_in.users))
    test_users = set(np.unique(split.test_fold_in.users))
    assert len(valid_users) == 5 and len(test_users) == 6
    assert not (train_users & valid_users or train_users & test_users or valid_users & test_users)
    # item space = items the training users clicked
    assert set(np.unique(split.train.items)) == set(range(split.train.n_items))
    # each held-out user: floor(0.2 * n) held out, the rest fold-in, disjoint
    for fold_in, heldout in [
        (split.valid_fold_in, split.valid_heldout),
        (split.test_fold_in, split.test_heldout),
    ]:
        n_in = np.bincount(fold_in.users, minlength=data.n_users)
        n_out = np.bincount(heldout.users, minlength=data.n_users)
        total = n_in + n_out
        np.testing.assert_array_equal(n_out, np.where(total >= 5, np.floor(0.2 * total + 1e-9), 0))
        assert not _keys(fold_in) & _keys(heldout)
    # nothing of a training user is lost; held-out users lose only non-training items
    assert len(split.train) == int(np.isin(data.users, list(train_users)).sum())


def test_strong_generalization_is_seeded_and_validates() -> None:
    data = _clicks_with_rare_items()
    a = S.strong_generalization(data, 5, 5, seed=1)
    b = S.strong_generalization(data, 5, 5, seed=1)
    assert _keys(a.test_heldout) == _keys(b.test_heldout)
    with pytest.raises(S.SplitError, match="training users"):
        S.strong_generalization(data, 20, 20, seed=1)


def test_strong_split_without_test_holds_train_and_validation_users_only() -> None:
    data = _clicks_with_rare_items()
    split = S.strong_generalization(data, 5, 6, seed=3)
    seen = split.without_test()
    assert seen.user_ids is split.train.user_ids and seen.item_ids is split.train.item_ids
    expected = _keys(split.train) | _keys(split.valid_fold_in) | _keys(split.valid_heldout)
    assert _keys(seen) == expected and len(seen) == len(expected)
    assert not set(np.unique(seen.users)) & set(np.unique(split.test_fold_in.users))


def test_keep_fraction() -> None:
    kept = S.keep_fraction(DATA, 0.4, seed=0)
    assert len(kept) == round(0.4 * len(DATA))
    assert _keys(kept) <= _keys(DATA)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: S.random_split(DATA, (0.5, 0.6), 0), "sum to 1"),
        (lambda: S.random_split(DATA, (1.0,), 0), "two parts"),
        (lambda: S.per_user_holdout(DATA, 1.5, 0), "fraction"),
        (lambda: S.leave_one_out(DATA, by="size"), "time"),  # type: ignore[arg-type]
        (lambda: S.temporal_split(DATA), "exactly one"),
        (lambda: S.temporal_split(DATA, fraction=0.1, cutoff=3), "exactly one"),
        (lambda: S.keep_fraction(DATA, 0.0, 0), "fraction"),
    ],
)
def test_bad_settings_say_what_is_wrong(call, message: str) -> None:
    with pytest.raises(S.SplitError, match=message):
        call()


def test_covering_random_split_covers_users_and_items() -> None:
    data = _synthetic(n_users=50, n_items=80, per_user=6, seed=2)
    parts = S.covering_random_split(data, (0.8, 0.1, 0.1), seed=5)
    _assert_partition(data, parts)
    assert set(np.unique(parts[0].users)) == set(np.unique(data.users))
    assert set(np.unique(parts[0].items)) == set(np.unique(data.items))
    for part, r in zip(parts, (0.8, 0.1, 0.1), strict=True):
        assert abs(len(part) - r * len(data)) <= 1
    again = S.covering_random_split(data, (0.8, 0.1, 0.1), seed=5)
    assert _keys(again[2]) == _keys(parts[2])


def test_latest_per_pair_keeps_the_latest_record_in_the_place_of_the_first() -> None:
    """What ``to_csr`` keeps (the greatest timestamp; at the same second, the later record),
    one record per pair, where the pair first appeared: a log grown by appending keeps
    every earlier pair in its place, so a split drawn by position draws the same."""
    data = Interactions.from_arrays(
        ["a", "b", "a", "a", "b", "c", "c", "c"],
        ["x", "x", "y", "x", "x", "z", "x", "z"],
        [1, 2, 3, 4, 5, 1, 2, 3],
        [10, 10, 20, 30, 10, 50, 5, 40],
    )
    pairs = data.latest_per_pair()
    named = [
        (data.user_ids.ids[u], data.item_ids.ids[i])
        for u, i in zip(pairs.users, pairs.items, strict=True)
    ]
    assert named == [("a", "x"), ("b", "x"), ("a", "y"), ("c", "z"), ("c", "x")]
    # (a, x): records 0 and 3, the later in time; (b, x): 1 and 4 at one second, the later
    # record; (c, z): 5 (t 50) and 7 (t 40), the earlier record is the later in time.
    assert pairs.ratings.tolist() == [4, 5, 3, 1, 2]
    assert pairs.timestamps.tolist() == [30, 10, 20, 50, 5]
    assert (pairs.to_csr() != data.to_csr()).nnz == 0
    assert pairs.user_ids is data.user_ids and pairs.item_ids is data.item_ids
    assert pairs.latest_per_pair() is pairs  # nothing repeated: the data itself
