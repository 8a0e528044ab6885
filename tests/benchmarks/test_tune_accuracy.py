"""Plumbing of benchmarks/tune_accuracy.py on tiny synthetic data (the real runs are in docs/).

Checks what the figures rest on: the search never sees a test user (top-k) or
a test rating (ratings), the winner is refitted and measured on the test part
by the protocol's own code, and the JSON holds one record per seed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks import tune_accuracy
from training.data.interactions import Interactions
from training.protocols import ratings_random, strong_generalization
from training.tuning import search as tuning_search


def _ratings(n_users: int = 80, n_items: int = 120, per_user: int = 20) -> Interactions:
    rng = np.random.default_rng(0)
    users, items, ratings, times = [], [], [], []
    for u in range(n_users):
        chosen = rng.choice(n_items, size=per_user, replace=False)
        users += [f"u{u}"] * per_user
        items += [f"i{i}" for i in chosen]
        # The strong protocol ranks 100 items. Mostly high ratings, so most records are clicks (> 3.5) under the protocol.
        ratings += list(rng.choice([2, 4, 5], size=per_user, p=[0.2, 0.4, 0.4]))
        times += list(range(per_user))
    return Interactions.from_arrays(users, items, ratings, times)


@pytest.fixture
def searched(monkeypatch: pytest.MonkeyPatch) -> list[Interactions]:
    """Every data set handed to ``run_search`` (the real search still runs)."""
    seen: list[Interactions] = []
    real = tuning_search.run_search

    def spy(data: Interactions, *args: Any, **kwargs: Any) -> Any:
        seen.append(data)
        return real(data, *args, **kwargs)

    monkeypatch.setattr(tune_accuracy, "run_search", spy)
    return seen


def test_topk_tunes_without_the_test_users_and_measures_them(
    tmp_path: Path, searched: list[Interactions]
) -> None:
    data = _ratings()
    out = tmp_path / "topk.json"
    argv = "--task topk --seeds 0,1 --budget-minutes 0.5 --trials 2 --models popularity,ease"
    result = tune_accuracy.main([*argv.split(), "--heldout-users", "8", "--out", str(out)], data)

    opts = strong_generalization.Options.parse({"heldout_users": 8})
    clicks, n_heldout = strong_generalization.prepare(data, None, opts)
    assert len(searched) == 2
    for seed, seen in zip((0, 1), searched, strict=True):
        split = strong_generalization.split_users(clicks, n_heldout, opts, seed)
        test_ids = {split.test_fold_in.user_ids.ids[u] for u in np.unique(split.test_fold_in.users)}
        seen_ids = {seen.user_ids.ids[u] for u in np.unique(seen.users)}
        assert len(test_ids) == 8 and not test_ids & seen_ids
        assert len(seen) == len(split.without_test())
    runs = result["runs"]
    assert [r["seed"] for r in runs] == [0, 1]
    for run in runs:
        assert run["winner"] in ("popularity", "ease")
        assert set(strong_generalization.HEADLINE) <= set(run["test"])
        assert 0.0 < run["test"]["ndcg@100"] <= 1.0 and run["test"]["test_users"] == 8
    written = json.loads(out.read_text())
    assert [r["seed"] for r in written["runs"]] == [0, 1]
    assert written["summary"]["ndcg@100"]["mean"] == pytest.approx(
        np.mean([r["test"]["ndcg@100"] for r in runs])
    )


def test_ratings_tunes_on_the_ninety_percent_and_reports_test_rmse(
    searched: list[Interactions],
) -> None:
    data = _ratings()
    argv = "--task ratings --seeds 0 --budget-minutes 0.5 --trials 2 --models biased-mf"
    result = tune_accuracy.main(argv.split(), data)

    train_all, test = ratings_random.split_ratings(data, ratings_random.Options(), 0)
    (seen,) = searched
    assert len(seen) == len(train_all) and len(seen) + len(test) == len(data)
    run = result["runs"][0]
    assert run["winner"] == "biased-mf" and run["test"]["rmse"] > 0.0
    assert result["summary"]["rmse"]["std"] == 0.0


def test_table_has_one_row_per_seed_and_the_mean() -> None:
    runs = [
        {"seed": s, "winner": "ease", "validation": {"ndcg@100": 0.5}, "test": figures}
        for s, figures in enumerate(
            [
                {"ndcg@100": 0.40, "recall@20": 0.3, "recall@50": 0.5},
                {"ndcg@100": 0.44, "recall@20": 0.3, "recall@50": 0.5},
            ]
        )
    ]
    text = tune_accuracy.table("topk", runs)
    assert text.count("\n| ") == 3 and "0.4200 ± 0.0283" in text
