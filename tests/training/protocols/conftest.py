"""Tiny synthetic data sets for the protocol tests (seconds, not minutes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from training.data.interactions import Interactions

N_USERS, N_ITEMS = 80, 130  # > 100 items: the strong protocol ranks 100 deep


def synthetic_ratings(seed: int = 0, per_user: int = 20) -> Interactions:
    """Users x items with a low-rank taste structure, ratings 1..5 and timestamps."""
    rng = np.random.default_rng(seed)
    taste = rng.normal(size=(N_USERS, 3))
    traits = rng.normal(size=(N_ITEMS, 3))
    popularity = rng.power(0.5, size=N_ITEMS)
    users, items, ratings = [], [], []
    for u in range(N_USERS):
        chosen = rng.choice(N_ITEMS, size=per_user, replace=False, p=popularity / popularity.sum())
        affinity = traits[chosen] @ taste[u]
        users += [u + 1] * per_user
        items += list(chosen + 1)
        ratings += list(np.clip(np.rint(3 + affinity), 1, 5))
    times = rng.integers(0, 10_000, size=len(users))
    return Interactions.from_arrays(users, items, ratings, times)


@pytest.fixture(scope="session")
def ratings_data() -> Interactions:
    return synthetic_ratings()


def write_tab(path: Path, data: Interactions, rows: np.ndarray, one_based: bool = True) -> None:
    """Write records ``rows`` as ``user<TAB>item<TAB>rating[<TAB>ts]`` lines."""
    shift = 1 if one_based else 0
    with path.open("w") as f:
        for r in rows:
            u = int(data.user_ids.external(data.users[r])) - 1 + shift
            i = int(data.item_ids.external(data.items[r])) - 1 + shift
            line = f"{u}\t{i}\t{int(data.ratings[r])}"
            f.write(line + (f"\t{int(data.timestamps[r])}\n" if one_based else "\n"))
