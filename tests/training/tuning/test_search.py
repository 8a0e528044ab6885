"""The search: every candidate tried, budget honoured on an injected clock, a usable report."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pytest

from tests.manual_clock import ManualClock
from training.data.interactions import Interactions
from training.segments import from_record
from training.tuning import TuningError
from training.tuning.plot import plot_search
from training.tuning.report import TrialRecord
from training.tuning.search import SearchSettings, check_budget, run_search


def test_every_candidate_is_tried_and_the_board_is_best_first(
    ml100k_slice: Interactions, tmp_path: Path
) -> None:
    seen: list[TrialRecord] = []
    result = run_search(
        ml100k_slice,
        SearchSettings(task="topk", models=["popularity", "ease"], max_trials=6, seed=0),
        on_trial=lambda record, left: seen.append(record),
        clock=ManualClock(0.0),
    )
    assert [r.model for r in seen[:2]] == ["popularity", "ease"]  # one each first (enqueued)
    assert len(seen) == 6 and all(r.state == "complete" for r in seen)
    assert [e.model for e in result.board] == ["ease", "popularity"]
    ease = [r for r in seen if r.model == "ease"]
    assert result.board[0].value == max(r.value for r in ease if r.value is not None)
    assert "l2" in (result.board[0].settings or {})
    repeats = [r for r in seen if r.model == "popularity"][1:]
    assert all("not refitted" in (r.note or "") for r in repeats)
    report = json.loads(json.dumps(result.report))  # JSON-able as the manifest needs
    assert report["metric"] == "ndcg@100" and report["split"]["kind"] == "users"
    assert report["winner"]["model"] == "ease"
    assert sum(report["trials"].values()) == 6
    png = plot_search(result.records, "ndcg@100", True, tmp_path / "plot.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Every model's best trial carries its figures per user-activity segment, on the same
    # validation users; weighed by their users they are the trial's counted figure.
    counts = []
    for entry in result.board:
        record = from_record(entry.by_activity)
        assert record is not None and entry.value is not None
        filled = [seg for seg in record.segments if seg.users]
        weighted = sum(seg.users * seg.metrics["ndcg@100"] for seg in filled)
        assert weighted / sum(seg.users for seg in filled) == pytest.approx(entry.value)
        counts.append([seg.users for seg in record.segments])
    assert counts[0] == counts[1]
    best = report["best_by_activity"]
    assert best and {row["model"] for row in best} <= {"ease", "popularity"}


def test_the_study_stops_once_the_budget_is_spent(ml100k_slice: Interactions) -> None:
    clock = ManualClock(0.0)
    seen: list[float] = []

    def each_trial(record: TrialRecord, left: float) -> None:
        seen.append(left)
        clock.advance(20.0)  # every trial "takes" 20 s on the injected clock

    run_search(
        ml100k_slice,
        SearchSettings(task="topk", models=["ease"], budget_seconds=30.0, max_trials=50),
        on_trial=each_trial,
        clock=clock,
    )
    assert seen == [30.0, 10.0]  # the second trial ends past the deadline: no third starts


class FastClock:
    """Each reading is 100 s after the last: any fit overruns the budget at its first epoch."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 100.0
        return self.now


def test_a_fit_running_at_the_deadline_stops_and_counts_its_best_epoch(
    ml100k_slice: Interactions,
) -> None:
    seen: list[TrialRecord] = []
    result = run_search(
        ml100k_slice,
        SearchSettings(task="ratings", models=["biased-mf"], budget_seconds=60.0),
        on_trial=lambda record, left: seen.append(record),
        clock=FastClock(),
    )
    assert len(seen) == 1  # the deadline passed during the first trial: the study stopped
    assert seen[0].state == "complete" and seen[0].note == "out of time at epoch 1"
    assert seen[0].best_epoch == 1 and result.board[0].value == seen[0].value
    assert 0.5 < (seen[0].value or 0.0) < 2.0  # a real validation RMSE of epoch 1
    # Its segments are those of the epoch it reached: their pairs pool to the same RMSE.
    record = from_record(seen[0].by_activity)
    assert record is not None
    filled = [seg.metrics for seg in record.segments if seg.users]
    pooled = sum(m["n"] * m["rmse"] ** 2 for m in filled) / sum(m["n"] for m in filled)
    assert math.sqrt(pooled) == pytest.approx(seen[0].value)


def test_a_search_in_which_no_trial_finished_is_an_error(
    ml100k_slice: Interactions, monkeypatch: pytest.MonkeyPatch
) -> None:
    from training.models.base import ModelError
    from training.models.ease import EASE

    def broken(*args: object, **kwargs: object) -> None:
        raise ModelError("ease: broken on purpose")

    monkeypatch.setattr(EASE, "fit", broken)
    notes: list[str | None] = []
    optuna_says: list[logging.LogRecord] = []
    heard = logging.Handler()
    heard.emit = optuna_says.append  # type: ignore[method-assign]
    logging.getLogger("optuna").addHandler(heard)
    try:
        with pytest.raises(TuningError, match="no trial finished within the budget"):
            run_search(
                ml100k_slice,
                SearchSettings(task="topk", models=["ease"], max_trials=2),
                on_trial=lambda record, left: notes.append(record.note),
                clock=ManualClock(0.0),
            )
    finally:
        logging.getLogger("optuna").removeHandler(heard)
    assert notes == ["ease: broken on purpose"] * 2
    # Optuna's own "Trial N failed" warning printed each failure's traceback beside the note
    assert [r.getMessage() for r in optuna_says if "failed" in r.getMessage()] == []


@pytest.mark.parametrize(
    ("budget", "trials", "message"),
    [
        (10.0, None, "too small for one trial"),
        (600.0, 0, "at least 1"),
        (1e300 * 60, None, "longer than a week"),
        (float("inf"), None, "longer than a week"),
    ],
)
def test_a_budget_that_cannot_run_a_trial_is_refused(
    budget: float, trials: int | None, message: str
) -> None:
    with pytest.raises(TuningError, match=message):
        check_budget(budget, trials)


def test_a_resumed_study_does_not_enqueue_the_first_trials_again(
    ml100k_slice: Interactions, tmp_path: Path
) -> None:
    """The lead enqueues each model's first trial once; reopening the study (a retry of the
    job, or a helper, which enqueues nothing) adds none."""
    from training.tuning.search import open_search

    storage = f"sqlite:///{tmp_path}/study.db"
    settings = SearchSettings(task="topk", models=["popularity", "ease"])
    first = open_search(ml100k_slice, settings, storage=storage, study_name="s")
    again = open_search(ml100k_slice, settings, storage=storage, study_name="s")
    helper = open_search(
        ml100k_slice, settings, storage=storage, study_name="s", enqueue_first=False
    )
    for search in (first, again, helper):
        trials = search.study.get_trials(deepcopy=False)
        assert [t.system_attrs["fixed_params"] for t in trials] == [
            {"model": "popularity"},
            {"model": "ease", "ease.l2": 500.0},  # at its default, the first thing to try
        ]


@pytest.mark.parametrize(
    "url",
    [
        "bogus://genrec:s3cret-pw@db.example/tune",  # no such dialect
        "postgresql://genrec:s3cret-pw@127.0.0.1:1/tune",  # nothing listens there
        "postgresql://genrec:s3cret-pw@db.example:port/tune",  # SQLAlchemy cannot parse it
    ],
)
def test_a_storage_error_never_shows_the_password(url: str) -> None:
    from training.tuning.search import open_storage

    with pytest.raises(TuningError, match="cannot open the study storage") as caught:
        open_storage(url)
    assert "s3cret-pw" not in str(caught.value)


def test_a_database_another_application_versions_is_refused_untouched(tmp_path: Path) -> None:
    """The service's own database (after ``genrec migrate``) has its ``alembic_version``:
    Optuna created its 12 tables there, then failed on the version in a 50-line traceback."""
    import sqlalchemy as sa

    from training.tuning.search import open_storage

    url = f"sqlite:///{tmp_path / 'genrec.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as db:
        db.execute(sa.text("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)"))
        db.execute(sa.text("INSERT INTO alembic_version VALUES ('0006')"))
    with pytest.raises(TuningError, match="another application's alembic_version") as caught:
        open_storage(url)
    assert "\n" not in str(caught.value) and "a database of its own" in str(caught.value)
    assert sa.inspect(engine).get_table_names() == ["alembic_version"]  # nothing created
    engine.dispose()


def test_a_study_resumes_only_for_what_it_was_made_for(
    ml100k_slice: Interactions, tmp_path: Path
) -> None:
    """Reusing a study name mixed its old trials in: a ratings run read an NDCG as an
    RMSE and saved a winner with it; another --models ran models not asked for."""
    import numpy as np

    url = f"sqlite:///{tmp_path / 'study.db'}"
    topk = SearchSettings(task="topk", models=["popularity", "ease"], max_trials=2)

    def run(data: Interactions, settings: SearchSettings) -> int:
        result = run_search(data, settings, storage=url, study_name="s", clock=ManualClock(0.0))
        return len(result.records)

    assert run(ml100k_slice, topk) == 2
    # The same study again: the earlier trials count, towards --trials as well.
    assert run(ml100k_slice, SearchSettings(**{**vars(topk), "max_trials": 3})) == 3
    refused = [
        (SearchSettings(task="ratings", models=["biased-mf"]), "task 'topk' (this run: 'ratings')"),
        (SearchSettings(**{**vars(topk), "metric": "recall@20"}), "metric 'ndcg@100'"),
        (SearchSettings(**{**vars(topk), "models": ["ease"]}), "models 'ease,popularity'"),
        (SearchSettings(**{**vars(topk), "seed": 1}), "split 'users (seed 0)'"),
    ]
    for settings, message in refused:
        with pytest.raises(TuningError, match="give a new --study-name") as caught:
            run(ml100k_slice, settings)
        assert message in str(caught.value) and "data" not in str(caught.value)
    fewer = ml100k_slice.subset(np.arange(len(ml100k_slice)) % 10 != 0)
    data_differs = r"study 's' was made for data '\d+ records, sha256 \w+' \(this run: '\d+ "
    with pytest.raises(TuningError, match=data_differs):
        run(fewer, topk)


def test_a_study_made_before_the_record_takes_the_first_run_s_purpose(
    ml100k_slice: Interactions, tmp_path: Path
) -> None:
    """A study from before ``genrec_purpose`` (a tune job retried across the upgrade)
    resumes, and from then on refuses a run for anything else."""
    import optuna

    url = f"sqlite:///{tmp_path / 'study.db'}"
    old = optuna.create_study(storage=url, study_name="old", direction="maximize")
    old.enqueue_trial({"model": "ease"})
    settings = SearchSettings(task="topk", models=["ease"], max_trials=1)
    run_search(ml100k_slice, settings, storage=url, study_name="old", clock=ManualClock(0.0))
    with pytest.raises(TuningError, match="models 'ease' \\(this run: 'ease,popularity'\\)"):
        run_search(ml100k_slice, SearchSettings(task="topk", models=["ease", "popularity"]),
                   storage=url, study_name="old")  # fmt: skip


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://admin:s@127.0.0.1:1/x", "postgresql://admin:***@127.0.0.1:1/x"),
        ("postgresql://u:1@127.0.0.1:1/x", "postgresql://u:***@127.0.0.1:1/x"),
        ("postgresql://postgres:postgres@127.0.0.1:1/x", "postgresql://postgres:***@127.0.0.1:1/x"),
    ],
)
def test_a_short_password_is_hidden_where_it_stands_and_nowhere_else(url: str, shown: str) -> None:
    """A password that also occurs elsewhere in the message (one letter, a digit, the
    user's name) was replaced everywhere: "connection refu***ed", "***27.0.0.***"."""
    from training.passwords import without_password

    message = (
        f"cannot open the study storage {url!r}: connection to server at "
        '"127.0.0.1", port 1 failed: Connection refused; Is the server running'
    )
    assert without_password(message, url) == message.replace(url, shown)
