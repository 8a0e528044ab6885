"""Splitters: seeded, exact (up to rounding) and index-stable.

Every splitter takes an ``Interactions`` and returns parts that keep the
input's id maps, so a model trained on one part scores users and items of
another part in the same index space. The one exception is
``strong_generalization``, which (as Liang et al. 2018) restricts the item
space to the items the training users clicked; its five parts still share
one map between them.

All randomness comes from ``numpy.random.default_rng(seed)``: the same seed
gives the same split on any machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from training.data.interactions import IdMap, Interactions


class SplitError(ValueError):
    """A split was asked for with impossible or inconsistent settings."""


# --------------------------------------------------------------------------- helpers


def _check_fraction(name: str, value: float, *, allow_zero: bool = False) -> None:
    low_ok = value >= 0 if allow_zero else value > 0
    if not (low_ok and value < 1):
        bound = "[0, 1)" if allow_zero else "(0, 1)"
        raise SplitError(f"{name} must be in {bound}, got {value}")


def _parts_from_labels(data: Interactions, labels: np.ndarray, n_parts: int) -> list[Interactions]:
    return [data.subset(labels == p) for p in range(n_parts)]


def _per_user_held_counts(
    counts: np.ndarray, fraction: float, min_per_user: int, min_kept: int = 1
) -> np.ndarray:
    """How many of each user's records to hold out: max(min_per_user, round(fraction * n)).

    A user always keeps ``min_kept`` records on the training side, and a user too
    small to satisfy both keeps everything there.
    """
    held = np.maximum(np.rint(counts * fraction).astype(np.int64), min_per_user)
    held = np.minimum(held, counts - min_kept)
    return np.where(counts >= min_per_user + min_kept, held, 0)


def _hold_out_per_user(users: np.ndarray, n_held: np.ndarray, order_key: np.ndarray) -> np.ndarray:
    """Bool mask: per user, the ``n_held[user]`` records with the largest ``order_key``."""
    order = np.lexsort((order_key, users))  # by user, then key ascending
    sorted_users = users[order]
    ends = np.searchsorted(sorted_users, sorted_users, side="right")
    from_end = ends - np.arange(len(order))  # 1 for a user's last record, 2 before it, ...
    mask = np.zeros(len(users), dtype=bool)
    mask[order] = from_end <= n_held[sorted_users]
    return mask


# --------------------------------------------------------------------------- record splits


def random_split(data: Interactions, ratios: Sequence[float], seed: int) -> list[Interactions]:
    """Shuffle records and cut them into ``len(ratios)`` parts of those proportions.

    Part sizes are ``round(cumsum(ratios) * N)`` differences, so they are exact
    up to one record and always sum to ``N``. Ratios must be positive and sum to 1.
    """
    r = np.asarray(ratios, dtype=np.float64)
    if r.ndim != 1 or len(r) < 2:
        raise SplitError(f"ratios needs at least two parts, got {ratios!r}")
    if np.any(r <= 0) or not np.isclose(r.sum(), 1.0, atol=1e-6):
        raise SplitError(f"ratios must be positive and sum to 1, got {ratios!r}")
    n = len(data)
    bounds = np.rint(np.cumsum(r) / r.sum() * n).astype(np.int64)
    bounds[-1] = n
    labels = np.empty(n, dtype=np.int64)
    perm = np.random.default_rng(seed).permutation(n)
    start = 0
    for part, end in enumerate(bounds):
        labels[perm[start:end]] = part
        start = end
    return _parts_from_labels(data, labels, len(r))


def per_user_holdout(
    data: Interactions, fraction: float, seed: int, min_per_user: int = 1
) -> tuple[Interactions, Interactions]:
    """(train, test): each user holds out ``max(min_per_user, round(fraction * n_u))`` records.

    Records are drawn at random per user; every user keeps at least one record
    in train, and users with fewer than ``min_per_user + 1`` records keep all.
    """
    _check_fraction("fraction", fraction)
    if min_per_user < 0:
        raise SplitError(f"min_per_user must be >= 0, got {min_per_user}")
    counts = np.bincount(data.users, minlength=data.n_users)
    n_held = _per_user_held_counts(counts, fraction, min_per_user)
    key = np.random.default_rng(seed).random(len(data))
    test = _hold_out_per_user(data.users, n_held, key)
    return data.subset(~test), data.subset(test)


def leave_one_out(
    data: Interactions, by: Literal["time", "random"] = "time", seed: int = 0
) -> tuple[Interactions, Interactions]:
    """(train, test): each user with >= 2 records holds out one.

    ``by="time"`` holds out the latest record (ties broken at random with
    ``seed``), ``by="random"`` a uniformly random one.
    """
    if by not in ("time", "random"):
        raise SplitError(f"leave_one_out by must be 'time' or 'random', got {by!r}")
    counts = np.bincount(data.users, minlength=data.n_users)
    n_held = (counts >= 2).astype(np.int64)
    tiebreak = np.random.default_rng(seed).random(len(data))
    if by == "time":
        # Rank by timestamp, then by the random tiebreak: a lexsort-derived key.
        order = np.lexsort((tiebreak, data.timestamps))
        key = np.empty(len(data), dtype=np.float64)
        key[order] = np.arange(len(data), dtype=np.float64)
    else:
        key = tiebreak
    test = _hold_out_per_user(data.users, n_held, key)
    return data.subset(~test), data.subset(test)


def temporal_split(
    data: Interactions, fraction: float | None = None, cutoff: int | None = None
) -> tuple[Interactions, Interactions]:
    """(train, test) by time: the last ``fraction`` of records, or records at/after ``cutoff``.

    With ``fraction``, records are ordered by timestamp (stable: equal times keep
    file order) and the last ``round(fraction * N)`` form the test part. With
    ``cutoff`` (unix seconds), train is ``t < cutoff`` and test ``t >= cutoff``.
    """
    if (fraction is None) == (cutoff is None):
        raise SplitError("temporal_split needs exactly one of fraction or cutoff")
    if cutoff is not None:
        test = data.timestamps >= cutoff
        return data.subset(~test), data.subset(test)
    assert fraction is not None
    _check_fraction("fraction", fraction)
    n_test = int(np.rint(fraction * len(data)))
    order = np.argsort(data.timestamps, kind="stable")
    test = np.zeros(len(data), dtype=bool)
    test[order[len(data) - n_test :]] = True
    return data.subset(~test), data.subset(test)


# --------------------------------------------------------------------------- strong generalization


@dataclass(frozen=True)
class StrongSplit:
    """Liang et al. 2018's split: training users, and held-out users split into fold-in/held-out.

    All parts share one id map. ``train`` holds every record of the training
    users; the validation and test users' records are divided 80/20 at random
    per user into ``*_fold_in`` (the scorer's input) and ``*_heldout`` (the
    relevant items to recover).
    """

    train: Interactions
    valid_fold_in: Interactions
    valid_heldout: Interactions
    test_fold_in: Interactions
    test_heldout: Interactions

    def without_test(self) -> Interactions:
        """Every record of the training and validation users (the test users' none), in the
        split's id maps: what a selection run (``genrec tune``) may see of this split."""
        parts = (self.train, self.valid_fold_in, self.valid_heldout)
        return Interactions(
            users=np.concatenate([p.users for p in parts]),
            items=np.concatenate([p.items for p in parts]),
            ratings=np.concatenate([p.ratings for p in parts]),
            timestamps=np.concatenate([p.timestamps for p in parts]),
            user_ids=self.train.user_ids,
            item_ids=self.train.item_ids,
            explicit=self.train.explicit,
            item_meta=self.train.item_meta,
            rated=_joined_rated(parts),
        )


def _joined_rated(parts: Sequence[Interactions]) -> np.ndarray | None:
    """The parts' ``rated`` marks joined, None when none has any (a part without marks
    is all rated)."""
    if all(p.rated is None for p in parts):
        return None
    return np.concatenate(
        [np.ones(len(p), dtype=bool) if p.rated is None else p.rated for p in parts]
    )


def _restrict_items(data: Interactions, keep_items: np.ndarray) -> Interactions:
    """Re-index to the sorted item indices ``keep_items``; records of other items are dropped."""
    remap = np.full(data.n_items, -1, dtype=np.int64)
    remap[keep_items] = np.arange(len(keep_items))
    mask = remap[data.items] >= 0
    kept = data.subset(mask)
    item_map = IdMap(tuple(data.item_ids.ids[i] for i in keep_items))
    return Interactions(
        users=kept.users,
        items=remap[kept.items],
        ratings=kept.ratings,
        timestamps=kept.timestamps,
        user_ids=data.user_ids,
        item_ids=item_map,
        explicit=data.explicit,
        item_meta=data.item_meta,
        rated=kept.rated,
    )


def _fold_in_split(
    data: Interactions, fold_in_fraction: float, rng: np.random.Generator, min_items: int
) -> tuple[Interactions, Interactions]:
    """Liang's ``split_train_test_proportion``: hold out floor((1 - f) * n_u) per user.

    Users with fewer than ``min_items`` records (5 in Liang's code) keep them
    all as fold-in, so they have nothing held out and drop out of evaluation.
    """
    counts = np.bincount(data.users, minlength=data.n_users)
    # +1e-9 so that e.g. (1 - 0.8) * 5 = 0.99999... still floors to 1, as 0.2 * 5 does.
    n_held = np.floor(counts * (1.0 - fold_in_fraction) + 1e-9).astype(np.int64)
    n_held = np.where(counts >= min_items, n_held, 0)
    held = _hold_out_per_user(data.users, n_held, rng.random(len(data)))
    return data.subset(~held), data.subset(held)


def strong_generalization(
    data: Interactions,
    n_valid_users: int,
    n_test_users: int,
    fold_in_fraction: float = 0.8,
    seed: int = 0,
    min_items_to_split: int = 5,
    candidates: np.ndarray | None = None,
) -> StrongSplit:
    """Split users into train / validation / test users as Liang et al. 2018's preprocessing.

    1. Users that have records are shuffled; the last ``n_test_users`` are test
       users, the ``n_valid_users`` before them validation users, the rest train.
       With ``candidates`` (user indices) only those are shuffled and may be held
       out; every other user with records trains (``genrec tune`` keeps users too
       sparse to validate on in training). Liang's protocol filters such users out
       before the split and passes None; when ``candidates`` holds every user with
       records the draw is the same as with None.
    2. The item space becomes the items that occur in the training users' records;
       held-out users' records of other items are dropped.
    3. Each held-out user's records are split at random: ``floor((1 - f) * n_u)``
       held out, the rest fold-in (users with < ``min_items_to_split`` records
       are all fold-in).

    Click definition and user filtering (rating > 3.5, >= 5 clicks) are the
    protocol's job and happen before this call.
    """
    _check_fraction("fold_in_fraction", fold_in_fraction)
    if n_valid_users < 1 or n_test_users < 0:
        # ``genrec tune`` asks for no test users: it selects settings and never tests.
        raise SplitError("strong_generalization needs at least one validation user")
    active = np.unique(data.users)
    drawn = active if candidates is None else np.intersect1d(active, candidates)
    if len(drawn) < n_valid_users + n_test_users or len(active) <= n_valid_users + n_test_users:
        raise SplitError(
            f"{len(drawn)} users cannot give {n_valid_users} validation + {n_test_users} "
            "test users and still leave training users"
        )
    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(drawn)
    n_train = len(drawn) - n_valid_users - n_test_users
    role = np.full(data.n_users, -1, dtype=np.int64)
    role[active] = 0  # users not drawn (not candidates) train
    role[shuffled[:n_train]] = 0
    role[shuffled[n_train : n_train + n_valid_users]] = 1
    role[shuffled[n_train + n_valid_users :]] = 2
    record_role = role[data.users]
    train_items = np.unique(data.items[record_role == 0])
    restricted = _restrict_items(data, train_items)
    record_role = role[restricted.users]
    valid_in, valid_out = _fold_in_split(
        restricted.subset(record_role == 1), fold_in_fraction, rng, min_items_to_split
    )
    test_in, test_out = _fold_in_split(
        restricted.subset(record_role == 2), fold_in_fraction, rng, min_items_to_split
    )
    return StrongSplit(
        train=restricted.subset(record_role == 0),
        valid_fold_in=valid_in,
        valid_heldout=valid_out,
        test_fold_in=test_in,
        test_heldout=test_out,
    )


def keep_fraction(data: Interactions, fraction: float, seed: int) -> Interactions:
    """A random ``round(fraction * N)`` of the records (ConvMF's sparser-training runs)."""
    if not 0 < fraction <= 1:
        raise SplitError(f"fraction must be in (0, 1], got {fraction}")
    n_keep = int(np.rint(fraction * len(data)))
    keep = np.random.default_rng(seed).permutation(len(data))[:n_keep]
    mask = np.zeros(len(data), dtype=bool)
    mask[keep] = True
    return data.subset(mask)


def covering_random_split(
    data: Interactions, ratios: Sequence[float], seed: int
) -> list[Interactions]:
    """``random_split`` whose first part holds at least one record of every user and item.

    ConvMF's split (Kim et al. 2016, the authors' ``data_manager.py``): one random
    record per user and one per still-uncovered item go to training first, the
    rest are shuffled and fill the parts up to their sizes. Sizes are as in
    ``random_split`` unless the covering records alone exceed the first part.
    """
    r = np.asarray(ratios, dtype=np.float64)
    if r.ndim != 1 or len(r) < 2 or np.any(r <= 0) or not np.isclose(r.sum(), 1.0, atol=1e-6):
        raise SplitError(f"ratios must be >= 2 positive numbers summing to 1, got {ratios!r}")
    rng = np.random.default_rng(seed)
    n = len(data)
    order = rng.permutation(n)
    covering = np.zeros(n, dtype=bool)
    _, first_of_user = np.unique(data.users[order], return_index=True)
    covering[order[first_of_user]] = True
    covered_items = np.zeros(data.n_items, dtype=bool)
    covered_items[data.items[covering]] = True
    uncovered = ~covered_items[data.items[order]]
    _, first_of_item = np.unique(data.items[order][uncovered], return_index=True)
    covering[order[np.flatnonzero(uncovered)[first_of_item]]] = True
    bounds = np.rint(np.cumsum(r) * n).astype(np.int64)
    bounds[-1] = n
    rest = order[~covering[order]]
    n_first = max(int(bounds[0]) - int(covering.sum()), 0)
    labels = np.empty(n, dtype=np.int64)
    labels[covering] = 0
    labels[rest[:n_first]] = 0
    start = n_first
    for part in range(1, len(r)):
        end = max(int(bounds[part]) - int(covering.sum()), start)
        labels[rest[start:end]] = part
        start = end
    return _parts_from_labels(data, labels, len(r))
