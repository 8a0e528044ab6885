"""Re-validating the finalists: more splits, the best mean wins, within the budget's last share."""

from __future__ import annotations

import json
import statistics

import pytest

from tests.manual_clock import ManualClock
from training.data.interactions import Interactions
from training.tuning import TuningError
from training.tuning.confirm import Finalist, Fold, choose_finalists, folds_for, rerank
from training.tuning.report import Entry, TrialRecord
from training.tuning.search import SearchSettings, check_settings, run_search
from training.tuning.split import tuning_split


def test_finalists_are_refitted_on_other_splits_and_ranked_by_their_mean(
    ml100k_slice: Interactions,
) -> None:
    folds: list[tuple[str, Fold]] = []
    result = run_search(
        ml100k_slice,
        SearchSettings(
            task="topk", models=["popularity", "ease"], max_trials=4, seed=3, confirm_folds=3
        ),
        on_fold=lambda finalist, fold: folds.append((finalist.model, fold)),
        clock=ManualClock(0.0),
    )
    # Two models finished trials, so ease's second-best trial fills the third place.
    # Fold by fold: every finalist on the split of seed 4, then on seed 5.
    assert [(m, f.split_seed) for m, f in folds] == [
        ("ease", 4), ("popularity", 4), ("ease", 4), ("ease", 5), ("popularity", 5), ("ease", 5)
    ]  # fmt: skip
    assert all(f.value is not None and 0.0 < f.value < 1.0 for _, f in folds)
    report = json.loads(json.dumps(result.report))  # JSON-able, as the manifest needs
    confirmation = report["confirmation"]
    finalists = confirmation["finalists"]
    assert confirmation["folds"] == 3 and len(finalists) == 3
    for entry in finalists:
        values = [entry["search_value"], *(f["value"] for f in entry["folds"])]
        assert entry["mean"] == pytest.approx(statistics.fmean(values), abs=1e-6)
        # Every fold fits with another model seed than the search did (0).
        assert [f["model_seed"] for f in entry["folds"]] == [1, 2]
    # Best mean first; the board follows each model's best finalist, and the winner is
    # the best mean (its row names that trial).
    assert [f["mean"] for f in finalists] == sorted((f["mean"] for f in finalists), reverse=True)
    assert [e.model for e in result.board] == ["ease", "popularity"]
    assert result.winner.trial == finalists[0]["trial"]
    assert result.winner.confirmed == pytest.approx(finalists[0]["mean"], abs=1e-6)
    assert report["winner"]["model"] == result.winner.model == "ease"
    # The search's own split is not one of the folds: the seeds differ, so the figures do.
    ease = finalists[0]
    assert len({ease["search_value"], *(f["value"] for f in ease["folds"])}) == 3


def test_the_search_keeps_the_last_fifth_of_the_budget_for_confirmation(
    ml100k_slice: Interactions,
) -> None:
    clock = ManualClock(0.0)
    lefts: list[float] = []

    def each_trial(record: TrialRecord, left: float) -> None:
        lefts.append(left)
        clock.advance(100.0)

    result = run_search(
        ml100k_slice,
        SearchSettings(task="topk", models=["popularity", "ease"], budget_seconds=600.0),
        on_trial=each_trial,
        clock=clock,
    )
    # 480 s of search (600 less a fifth): trials end at 100..500 s on the injected clock.
    assert lefts == [480.0, 380.0, 280.0, 180.0, 80.0]
    assert result.report["confirmation"]["folds"] == 3  # the default for 5 min and more


def test_without_confirmation_the_search_alone_decides() -> None:
    assert folds_for(299.0, None) == 1 and folds_for(300.0, None) == 3
    assert folds_for(60.0, 2) == 2  # asked for: kept, whatever the budget
    settings = SearchSettings(task="topk", budget_seconds=120.0)
    assert settings.folds == 1 and settings.search_seconds == 120.0
    for folds in (0, 21, 100_000, 2**63 - 1):
        with pytest.raises(TuningError, match="--confirm-folds must be between 1 and 20, got"):
            check_settings(SearchSettings(task="topk", confirm_folds=folds))
    check_settings(SearchSettings(task="topk", confirm_folds=20))


def test_no_fold_starts_after_the_deadline(
    ml100k_slice: Interactions, monkeypatch: pytest.MonkeyPatch
) -> None:
    """100,000 folds ran on and on past the budget, one "(out of time)" line per fit."""
    import training.tuning.confirm as confirm

    clock = ManualClock(0.0)

    def fit(finalist: Finalist, *args: object) -> Fold:
        clock.advance(10.0)  # each fit takes 10 s of the 60 s left
        return Fold(None, 1, 0.5, 10.0)

    monkeypatch.setattr(confirm, "_fit", fit)
    split = tuning_split(ml100k_slice, "topk", None, None, 0)
    finalists = [Finalist(m, n, {}, 0.5, fit_seconds=1.0) for n, m in enumerate(["ease", "bpr"])]
    lines: list[Fold] = []
    confirm.confirm_finalists(
        ml100k_slice, split, finalists, task="topk", split_name=None, metric=None, seed=0,
        folds=100_000, seconds=60.0, clock=clock, on_fold=lambda f, fold: lines.append(fold),
    )  # fmt: skip
    assert len(lines) == 6  # three folds of two fits fill the 60 s; none starts after
    assert clock() == 60.0


def _entry(model: str, value: float) -> Entry:
    return Entry(model, value, {}, 1.0, 0, 1, {"complete": 1})


def test_rerank_puts_the_finalists_first_in_their_confirmed_order() -> None:
    board = [_entry("a", 0.50), _entry("b", 0.49), _entry("c", 0.48), _entry("d", 0.40)]
    a, b, c = (Finalist(e.model, 0, {}, e.value or 0.0) for e in board[:3])
    a.folds = [Fold(1, 1, 0.40, 1.0), Fold(2, 2, 0.42, 1.0)]  # lucky on the search's split
    b.folds = [Fold(1, 1, 0.48, 1.0), Fold(2, 2, 0.47, 1.0)]
    c.folds = [Fold(1, 1, None, 1.0, note="failed"), Fold(2, 2, 0.46, 1.0)]
    c.folds.append(Fold(3, 3, 0.10, 1.0, note="out of time"))  # cut short: not averaged
    ranked = sorted([a, b, c], key=lambda f: -f.mean)
    board2 = rerank(board, ranked)
    assert [e.model for e in board2] == ["b", "c", "a", "d"]
    assert board2[0].confirmed == pytest.approx((0.49 + 0.48 + 0.47) / 3)
    assert board2[1].confirmed == pytest.approx((0.48 + 0.46) / 2)  # the failed fold left out
    assert board2[3].confirmed is None and board2[3].value == 0.40


def _record(number: int, model: str, value: float | None, l2: float) -> TrialRecord:
    state = "complete" if value is not None else "pruned"
    return TrialRecord(number, model, {"l2": l2}, state, value, 1.0, 1.0, best_epoch=1)


def test_a_one_model_search_confirms_its_best_three_distinct_trials() -> None:
    records = [
        _record(0, "ease", 0.40, 500.0),
        _record(1, "ease", 0.47, 200.0),
        _record(2, "ease", 0.47, 200.0),  # the same settings again: one finalist
        _record(3, "ease", None, 50.0),  # pruned: never a finalist
        _record(4, "ease", 0.45, 300.0),
        _record(5, "ease", 0.43, 900.0),
    ]
    board = [Entry("ease", 0.47, {"l2": 200.0}, 1.0, 1, 1, {"complete": 5, "pruned": 1})]
    finalists = choose_finalists(board, records, higher_is_better=True)
    assert [(f.trial, f.settings["l2"]) for f in finalists] == [(1, 200.0), (4, 300.0), (5, 900.0)]
    # Ranked by their means, the model's row becomes its best-confirmed trial.
    finalists[0].folds = [Fold(1, 1, 0.41, 1.0)]
    finalists[1].folds = [Fold(1, 1, 0.46, 1.0)]
    finalists[2].folds = [Fold(1, 1, 0.40, 1.0)]
    ranked = sorted(finalists, key=lambda f: -f.mean)
    (row,) = rerank(board, ranked)
    assert (row.trial, row.settings, row.value) == (4, {"l2": 300.0}, 0.45)
    assert row.confirmed == pytest.approx(0.455) and row.trials == board[0].trials


def test_a_one_model_search_picks_the_best_mean_of_its_trials(
    ml100k_slice: Interactions,
) -> None:
    result = run_search(
        ml100k_slice,
        SearchSettings(task="topk", models=["ease"], max_trials=6, confirm_folds=2),
        clock=ManualClock(0.0),
    )
    finalists = result.report["confirmation"]["finalists"]
    assert len(finalists) == 3 and {f["model"] for f in finalists} == {"ease"}
    assert result.winner.trial == finalists[0]["trial"]
    assert result.winner.confirmed == pytest.approx(finalists[0]["mean"], abs=1e-6)
    assert finalists[0]["mean"] >= max(f["mean"] for f in finalists)
