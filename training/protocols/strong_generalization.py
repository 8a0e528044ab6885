"""Strong generalization — Liang, Krishnan, Hoffman & Jebara, WWW 2018 (Mult-VAE), Sec. 4.

* Clicks: ratings > 3.5 (``click_threshold``); users with >= 5 clicks kept. On the
  service's log of ratings and clicks, an event without a rating is a click.
* Users: N validation + N test users drawn at random (N = 150 below 10k users,
  10,000 otherwise: the paper's ML-20M setting), the rest train the model.
* Items: those the training users clicked; held-out users' other clicks dropped.
* Each held-out user's clicks split 80/20 at random: the 80% fold-in is the
  scorer's input (user index -1), and is excluded from the ranking; the 20%
  held out are the relevant items.
* The model is kept at the best validation NDCG@100; test NDCG@100, Recall@20,
  Recall@50 with Liang's recall denominator min(k, |relevant|).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from training.data.interactions import Interactions
from training.data.splits import StrongSplit, strong_generalization
from training.evaluate import evaluate_topk, topk_validation
from training.models.base import Scorer
from training.protocols.common import (
    DataSpec,
    Plan,
    ProtocolError,
    Trial,
    dataset_name,
    load,
)
from training.protocols.options import ProtocolOptions, fraction, option, positive

NAME = "strong-generalization"
HEADLINE = ["ndcg@100", "recall@20", "recall@50"]
#: Held-out users per side: the paper's ML-20M figure from this many users on, else the small one.
HELDOUT_LARGE, HELDOUT_SMALL, LARGE_FROM = 10_000, 150, 10_000


@dataclass(frozen=True)
class Options(ProtocolOptions):
    """Liang et al.'s preprocessing knobs."""

    protocol: ClassVar[str] = NAME

    click_threshold: float = option(
        3.5, "ratings above this are clicks", default_text="3.5; implicit data: all records"
    )
    min_clicks: int = option(5, "users with fewer clicks are dropped", check=positive)
    heldout_users: int | None = option(
        None,
        "validation users = test users = this many",
        check=positive,
        default_text=f"{HELDOUT_SMALL}, {HELDOUT_LARGE} from {LARGE_FROM // 1000}k users",
    )
    fold_in_fraction: float = option(
        0.8, "share of a held-out user's clicks used as fold-in input", check=fraction
    )


def clicks(data: Interactions, threshold: float, min_clicks: int) -> Interactions:
    """Liang's ``filter_triplets``: clicks (rating > threshold) of users with >= min_clicks.

    On a log of ratings and unrated events (``Interactions.rated``) the rule applies to
    the ratings: an event without one is a click, not a rating of 1.0 under the bar."""
    if data.explicit:
        click = data.ratings > threshold
        if data.rated is not None:
            click |= ~data.rated
        data = data.subset(click)
    kept = data.binarize(None)
    counts = np.bincount(kept.users, minlength=kept.n_users)
    return kept.subset(counts[kept.users] >= min_clicks)


def prepare(
    data_spec: DataSpec, data_dir: Path | str | None, opts: Options
) -> tuple[Interactions, int]:
    """The protocol's clicks and its number of held-out users per side (validation = test)."""
    data = clicks(load(data_spec, data_dir), opts.click_threshold, opts.min_clicks)
    n_active = len(np.unique(data.users))
    n_heldout = opts.heldout_users
    if n_heldout is None:
        n_heldout = HELDOUT_SMALL if n_active < LARGE_FROM else HELDOUT_LARGE
    if n_active <= 2 * n_heldout:
        raise ProtocolError(
            f"{n_active} users with enough clicks cannot give 2 x {n_heldout} held-out users; "
            "lower the heldout_users option"
        )
    return data, n_heldout


def split_users(data: Interactions, n_heldout: int, opts: Options, seed: int) -> StrongSplit:
    """One seed's train / validation / test users (what ``plan`` trains and tests on)."""
    return strong_generalization(data, n_heldout, n_heldout, opts.fold_in_fraction, seed)


def measure_test(split: StrongSplit, scorer: Scorer) -> dict[str, float]:
    """The headline on the test users: their fold-in is the input, their held-out 20% relevant."""
    test_relevant = split.test_heldout.to_csr("ones")
    metrics = evaluate_topk(
        scorer,
        split.test_fold_in.to_csr("ones"),
        test_relevant,
        ks=(20, 50, 100),
        metrics=("ndcg", "recall"),
        recall_denominator="min",
    )
    result = {k: metrics[k] for k in HEADLINE}
    result["test_users"] = float((np.diff(test_relevant.indptr) > 0).sum())
    return result


def plan(data_spec: DataSpec, data_dir: Path | str | None, opts: Options, seeds: list[int]) -> Plan:
    """Train on the training users, select on validation NDCG@100, report the test users."""
    data, n_heldout = prepare(data_spec, data_dir, opts)

    def trial(seed: int) -> Trial:
        split = split_users(data, n_heldout, opts, seed)
        train = split.train.compact()  # drop held-out users from the model's user space
        if train.n_items != split.train.n_items:
            raise ProtocolError("internal: the training item space changed while compacting")
        validation = topk_validation(
            split.valid_fold_in.to_csr("ones"),
            split.valid_heldout.to_csr("ones"),
            metric="ndcg@100",
            recall_denominator="min",
        )
        return Trial(train, validation, lambda scorer: measure_test(split, scorer))

    return Plan(dataset_name(data_spec), seeds, trial)
