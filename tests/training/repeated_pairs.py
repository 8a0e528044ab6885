"""Logs with every (user, item) pair recorded twice, as an operator's log can hold them."""

from __future__ import annotations

import dataclasses

import numpy as np

from training.data.interactions import Interactions


def latest_copies(data: Interactions) -> Interactions:
    """``data`` re-rated ``6 - r`` ten seconds later: what ``every_pair_twice`` keeps per pair."""
    return dataclasses.replace(data, ratings=6 - data.ratings, timestamps=data.timestamps + 10)


def every_pair_twice(data: Interactions) -> Interactions:
    """``data`` (no pair repeated in it), then every one of its pairs again, re-rated
    ``6 - r`` ten seconds later (the bug hunt's ``dups.csv``, logged by appending).

    One record per pair, the latest, in the place of the first, is
    ``latest_copies(data)`` record for record.
    """
    later = latest_copies(data)
    return Interactions(
        users=np.concatenate([data.users, later.users]),
        items=np.concatenate([data.items, later.items]),
        ratings=np.concatenate([data.ratings, later.ratings]),
        timestamps=np.concatenate([data.timestamps, later.timestamps]),
        user_ids=data.user_ids,
        item_ids=data.item_ids,
        explicit=data.explicit,
    )
