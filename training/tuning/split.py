"""The validation a tuning run selects on, drawn from the operator's data (never a test set).

* top-k, ``users`` (default): strong generalization (Liang et al. 2018): a
  tenth of the users with ``MIN_ITEMS_TO_SPLIT`` or more records (at least
  ``MIN_VALIDATION_USERS`` of them) are held out whole; 80% of each one's
  records are folded in (the scorer's input, as serving folds in a new user)
  and the other 20% are the items to recover. Users with fewer records are
  never held out (they would have nothing to recover) and train with the rest.
  It works on any log, with or without timestamps, and measures what serving
  does for the users it has not trained on.
* top-k, ``time``: train on records before t, validate on what known users did
  at or after t (t leaves the newest tenth of the records after it). Closer
  to deployment when the log has real timestamps; refused when it has none.
* ratings, ``random``: a random tenth of the ratings held out (the model
  predicts them for its own users).

The metric defaults to NDCG@100 for top-k (capped at the catalogue size) and
RMSE for ratings. Every split is drawn over one record per (user, item) pair,
its latest (``Interactions.latest_per_pair``, as ``genrec train``'s slice):
split record by record, a repeated pair had a copy on each side.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from training.data.interactions import Interactions
from training.data.splits import random_split, strong_generalization, temporal_split
from training.evaluate import rating_validation, topk_validation
from training.models import trains_on_ratings
from training.models.base import Validation
from training.tuning.errors import TuningError

SPLITS = {"topk": ("users", "time"), "ratings": ("random",)}
DEFAULT_SPLIT = {"topk": "users", "ratings": "random"}
DEFAULT_METRIC = {"topk": "ndcg@100", "ratings": "rmse"}
#: Share of users (``users``), records (``time``) or ratings (``random``) that validate.
VALIDATION_FRACTION = 0.1
#: Fewer users than this cannot give both a training part and a validation part.
MIN_USERS = 20
#: The validation part must hold at least this many users with something to recover.
MIN_VALIDATION_USERS = 5
#: A held-out user with fewer records (of items the training users have) is all fold-in:
#: nothing of theirs is left to recover (``strong_generalization``'s rule).
MIN_ITEMS_TO_SPLIT = 5


@dataclass
class TuningSplit:
    """Training part, the validation every trial is measured by, and how it was drawn."""

    train: Interactions
    validation: Validation
    record: dict[str, Any]  # for the report and the manifest: kind, sizes, seed, metric
    #: The same top-k validation for a rating model on a log of ratings and clicks: its
    #: users' rated records are the input (as serving folds a rating model's user in, a
    #: click is no rating), every record of theirs is excluded from the ranking. None:
    #: the data marks no unrated records, and ``validation`` serves every model.
    rated_validation: Validation | None = None

    def validation_for(self, model: str) -> Validation:
        """The validation ``model`` is measured by (``rated_validation`` for a rating model)."""
        if self.rated_validation is not None and trains_on_ratings(model):
            return self.rated_validation
        return self.validation


def parse_metric(task: str, metric: str | None, n_items: int) -> str:
    """A valid metric name for ``task`` (``ndcg@K``/``recall@K`` or ``rmse``/``mae``)."""
    metric = (metric or DEFAULT_METRIC[task]).lower()
    if task == "ratings":
        if metric not in ("rmse", "mae"):
            raise TuningError(f"--task ratings selects on rmse or mae, not '{metric}'")
        return metric
    name, _, cut = metric.partition("@")
    if name not in ("ndcg", "recall") or not cut.isdigit() or int(cut) < 1:
        raise TuningError(f"--task topk selects on ndcg@K or recall@K, not '{metric}'")
    return f"{name}@{min(int(cut), n_items)}"  # a tiny catalogue is ranked whole


def check_split(task: str, split: str | None, metric: str | None) -> str:
    """The split name for ``task`` (its default when None); refuses a split or metric
    that does not fit the task. Needs no data, so a request fails before any is read."""
    split = split or DEFAULT_SPLIT[task]
    if split not in SPLITS[task]:
        raise TuningError(
            f"--split {split} does not apply to --task {task}; choose {', '.join(SPLITS[task])}"
        )
    parse_metric(task, metric, n_items=1 << 62)
    return split


def tuning_split(
    data: Interactions, task: str, split: str | None, metric: str | None, seed: int = 0
) -> TuningSplit:
    """Build the validation for ``task`` by ``split`` (its default when None), over the
    latest record of each (user, item) pair."""
    split = check_split(task, split, metric)
    data = data.latest_per_pair()
    active = len(np.unique(data.users))
    if active < MIN_USERS:
        raise TuningError(
            f"the data has {active} users; tuning needs at least {MIN_USERS} to hold some "
            "out for validation"
        )
    metric = parse_metric(task, metric, data.n_items)
    if split == "users":
        return _held_out_users(data, metric, seed)
    if split == "time":
        return _before_after(data, metric)
    return _random_ratings(data, metric, seed)


def _topk(
    history: Any, relevant: Any, metric: str, users: np.ndarray | None, exclude: Any = "history"
) -> Validation:
    cut = metric.partition("@")[2]
    return topk_validation(
        history,
        relevant,
        metric=metric,
        ks=(int(cut),),
        metrics=("ndcg", "recall"),
        users=users,
        exclude=exclude,
    )


def _rated_topk(
    history: Interactions, relevant: Any, metric: str, users: np.ndarray | None
) -> Validation | None:
    """``_topk`` for a rating model when ``history`` marks unrated records: its rated
    records are the input, all of them the seen items (``TuningSplit.rated_validation``)."""
    if history.rated is None:
        return None
    seen = history.to_csr()
    return _topk(history.rated_part().to_csr(), relevant, metric, users, exclude=seen)


def _held_out_users(data: Interactions, metric: str, seed: int) -> TuningSplit:
    # Only a user with MIN_ITEMS_TO_SPLIT records can have some folded in and some to
    # recover; one with fewer, held out, was all fold-in: lost to training and to
    # validation alike. Drawn among every user, a log of many one-event visitors held out
    # mostly those and failed the split. Such users are never held out: they train
    # (Microsoft Recommenders' python_stratified_split drops users under its min_rating
    # before splitting; here their records still teach the model), and the tenth is of
    # the users validation can use.
    counts = np.bincount(data.users, minlength=data.n_users)
    eligible = np.flatnonzero(counts >= MIN_ITEMS_TO_SPLIT)
    too_sparse = int(np.count_nonzero((counts > 0) & (counts < MIN_ITEMS_TO_SPLIT)))
    if len(eligible) < MIN_VALIDATION_USERS + 1:
        raise TuningError(
            f"only {len(eligible)} users have {MIN_ITEMS_TO_SPLIT} or more records; --split "
            f"users validates on users with some records folded in and some to recover, and "
            f"needs at least {MIN_VALIDATION_USERS + 1} such users (log more, or use "
            "--split time when the log has timestamps)"
        )
    n_valid = min(
        max(MIN_VALIDATION_USERS, round(VALIDATION_FRACTION * len(eligible))), len(eligible) - 1
    )
    parts = strong_generalization(
        data,
        n_valid,
        0,
        fold_in_fraction=0.8,
        seed=seed,
        min_items_to_split=MIN_ITEMS_TO_SPLIT,
        candidates=eligible,
    )
    scored = len(np.unique(parts.valid_heldout.users))
    if scored < MIN_VALIDATION_USERS:
        # Say why, with what would help: on a long catalogue with few users most records
        # are of items one user has, and "not enough records" read as a count the operator
        # could see in the log (every user had 30) rather than the items' overlap.
        raise TuningError(
            f"only {scored} of the {n_valid} held-out users have {MIN_ITEMS_TO_SPLIT} or more "
            "records to recover, counting only records of items the training users have too "
            "(records of items that no training user has cannot be scored and are dropped); "
            f"tuning needs {MIN_VALIDATION_USERS}: log more users, or more records of items "
            "several users share"
        )
    relevant = parts.valid_heldout.to_csr("ones")
    validation = _topk(parts.valid_fold_in.to_csr(), relevant, metric, None)
    return TuningSplit(
        parts.train,
        validation,
        {
            "kind": "users",
            "seed": seed,
            "validation_users": n_valid,
            "users_too_sparse_to_validate": too_sparse,
            "fold_in_fraction": 0.8,
            "train_interactions": len(parts.train),
            "metric": metric,
        },
        _rated_topk(parts.valid_fold_in, relevant, metric, None),
    )


def _before_after(data: Interactions, metric: str) -> TuningSplit:
    if len(data) == 0 or int(data.timestamps.max()) <= 0:
        raise TuningError(
            "--split time needs timestamps, and this data has none; use --split users"
        )
    # t is the time before which 90% of the records lie; records at t go to validation,
    # so "train before t, validate from t" holds even when many records share a second.
    cutoff = int(np.sort(data.timestamps)[int((1 - VALIDATION_FRACTION) * len(data))])
    train, after = temporal_split(data, cutoff=cutoff)
    known = np.zeros(data.n_users, dtype=bool)
    known[train.users] = True
    after = after.subset(known[after.users])
    scored = len(np.unique(after.users))
    if scored < MIN_VALIDATION_USERS:
        raise TuningError(
            f"only {scored} users were active both before and after the time split; "
            f"tuning needs {MIN_VALIDATION_USERS} (use --split users)"
        )
    relevant, users = after.to_csr("ones"), np.arange(data.n_users)
    validation = _topk(train.to_csr(), relevant, metric, users)
    return TuningSplit(
        train,
        validation,
        {
            "kind": "time",
            "cutoff": cutoff,
            "validation_users": scored,
            "train_interactions": len(train),
            "metric": metric,
        },
        _rated_topk(train, relevant, metric, users),
    )


def _random_ratings(data: Interactions, metric: str, seed: int) -> TuningSplit:
    train, valid = random_split(data, (1 - VALIDATION_FRACTION, VALIDATION_FRACTION), seed)
    validation = rating_validation(train.to_csr(), valid, metric=metric)  # type: ignore[arg-type]
    return TuningSplit(
        train,
        validation,
        {
            "kind": "random",
            "seed": seed,
            "validation_ratings": len(valid),
            "train_interactions": len(train),
            "metric": metric,
        },
    )
