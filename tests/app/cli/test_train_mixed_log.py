"""``genrec train|tune --data db`` on a log of ratings and clicks: a rating model trains on
the ratings alone (a click is no 1-star rating), a top-k model on every event."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from app.cli import app
from app.core.db import make_engine, make_sessionmaker, upgrade_database
from app.repository import NewInteraction, add_interactions
from models_store import ModelStore
from tests.conftest import age_log

USERS, RATED, CLICKED = 30, 8, 4


def _log_ratings_and_clicks(folder: Path) -> None:
    """Each user rates ``RATED`` items 4 or 5 and clicks ``CLICKED`` others, untyped or
    typed, without a rating."""
    url = f"sqlite:///{folder}/log.db"
    upgrade_database(url)
    engine = make_engine(url)
    rows = [
        NewInteraction(f"u{u}", f"i{(u + k) % 12}", 4.0 + k % 2)
        for u in range(USERS)
        for k in range(RATED)
    ]
    rows += [
        NewInteraction(f"u{u}", f"c{(u + k) % 6}", None, type="click" if k % 2 else None)
        for u in range(USERS)
        for k in range(CLICKED)
    ]
    sessions = make_sessionmaker(engine)
    with sessions() as session:
        add_interactions(session, rows)
        session.commit()
    engine.dispose()
    age_log(url)  # before the read's commit margin: its data


def test_a_rating_model_trains_on_the_ratings_and_a_topk_model_on_every_event(
    cli_settings: Path,
) -> None:
    _log_ratings_and_clicks(cli_settings)
    store = ModelStore(cli_settings / "store")
    rating = CliRunner().invoke(
        app, ["train", "--model", "biased-mf", "--data", "db", "--set", "epochs=2"]
    )
    assert rating.exit_code == 0, rating.output
    manifest = store.manifest("biased-mf", "1")
    assert manifest.data.n_interactions == USERS * RATED
    assert manifest.data.n_items == 12  # no clicked-only item
    # Predictions are clipped into the training ratings' range: no longer down to 1.
    assert manifest.scorer_config["rating_range"] == [4.0, 5.0]
    topk = CliRunner().invoke(app, ["train", "--model", "ease", "--data", "db"])
    assert topk.exit_code == 0, topk.output
    assert store.manifest("ease", "1").data.n_interactions == USERS * (RATED + CLICKED)


def test_a_ratings_search_tunes_on_the_ratings(cli_settings: Path) -> None:
    _log_ratings_and_clicks(cli_settings)
    result = CliRunner().invoke(
        app,
        ["tune", "--data", "db", "--task", "ratings", "--models", "biased-mf", "--trials", "1"],
    )
    assert result.exit_code == 0, result.output
    manifest = ModelStore(cli_settings / "store").manifest("biased-mf", "1")
    assert manifest.data.n_interactions == USERS * RATED


def test_a_rating_version_is_evaluated_on_the_ratings_it_trained_on(cli_settings: Path) -> None:
    _log_ratings_and_clicks(cli_settings)
    runner = CliRunner()
    trained = runner.invoke(
        app, ["train", "--model", "biased-mf", "--data", "db", "--set", "epochs=2"]
    )
    assert trained.exit_code == 0, trained.output
    result = runner.invoke(app, ["evaluate", "--model", "biased-mf@1", "--data", "db"])
    assert result.exit_code == 0, result.output
    n_train, _, n_heldout = result.output.partition(" interactions trained on, ")
    assert int(n_train.split()[-1]) + int(n_heldout.split()[0]) == USERS * RATED


def test_a_rating_model_that_wins_a_topk_search_is_saved_as_genrec_train_fits_it(
    cli_settings: Path,
) -> None:
    """A top-k search reads every event; its rating-model winner is refitted and saved on
    the ratings alone (as ``genrec train`` fits it), not on each click as a 1-star rating."""
    _log_ratings_and_clicks(cli_settings)
    search = ["--task", "topk", "--models", "biased-mf", "--trials", "1", "--budget-minutes", "1"]
    result = CliRunner().invoke(app, ["tune", "--data", "db", *search, "--metric", "ndcg@10"])
    assert result.exit_code == 0, result.output
    manifest = ModelStore(cli_settings / "store").manifest("biased-mf", "1")
    assert manifest.data.n_interactions == USERS * RATED
    assert manifest.scorer_config["rating_range"] == [4.0, 5.0]
    # Saved with the very data a read for it gives (genrec evaluate recognises it, not
    # "trained on other data"; a tuned version has no unseen slice to be measured on).
    evaluated = CliRunner().invoke(app, ["evaluate", "--model", "biased-mf@1", "--data", "db"])
    assert f"trained on all {USERS * RATED} interactions of its data" in evaluated.output
