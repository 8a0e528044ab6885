"""The tune report names the best model per user-activity segment, from each model's
best trial on the shared validation split."""

from __future__ import annotations

import math

from training.tuning.report import Entry, best_by_activity


def _segments(**figures: tuple[int, float | None]) -> dict[str, object]:
    labels = {"zero": "0", "new": "1-4", "light": "5-19", "regular": "20-99", "heavy": "100+"}
    return {
        "edges": [0, 1, 5, 20, 100],
        "segments": [
            {
                "label": label,
                "users": figures.get(key, (0, None))[0],
                "metrics": {}
                if figures.get(key, (0, None))[1] is None
                else {"rmse": figures[key][1]},
            }
            for key, label in labels.items()
        ],
    }


def _entry(model: str, value: float | None, by_activity: dict[str, object] | None) -> Entry:
    return Entry(model, value, {}, 1.0, 0, 1, {"complete": 1}, by_activity=by_activity)


def test_each_segment_names_the_model_best_for_its_users_lower_being_better() -> None:
    board = [
        _entry("biased-mf", 0.90, _segments(new=(30, 1.10), regular=(50, 0.80))),
        _entry("popularity", 1.00, _segments(new=(30, 0.95), regular=(50, 1.02))),
        _entry("svd", None, None),  # no complete trial
    ]
    rows = best_by_activity(board, "rmse", higher_is_better=False)
    assert rows == [
        {"label": "1-4", "users": 30, "model": "popularity", "value": 0.95},
        {"label": "20-99", "users": 50, "model": "biased-mf", "value": 0.80},
    ]


def test_higher_is_better_and_non_finite_or_missing_figures_are_skipped() -> None:
    board = [
        _entry("a", 0.3, _segments(new=(5, math.nan), heavy=(2, 0.2))),
        _entry("b", 0.2, _segments(new=(5, 0.1), heavy=(2, 0.4))),
        _entry("c", 0.1, {"edges": "broken"}),
    ]
    rows = best_by_activity(board, "rmse", higher_is_better=True)
    assert [(r["label"], r["model"]) for r in rows] == [("1-4", "b"), ("100+", "b")]
    assert best_by_activity([], "rmse", True) == []
