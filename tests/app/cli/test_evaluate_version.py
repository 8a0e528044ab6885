"""``genrec evaluate --model NAME@VERSION``: a stored version measured without retraining."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from app.cli import app
from app.core.db import make_engine, make_sessionmaker, session_scope, upgrade_database
from app.repository import NewInteraction, add_interactions
from tests.conftest import age_log
from training.data.datasets import load_dataset
from training.data.splits import per_user_holdout
from training.evaluate import evaluate_topk
from training.pipeline import train_model


def test_a_stored_version_scores_what_the_in_process_evaluation_scores(
    env: Path, tmp_path: Path
) -> None:
    runner = CliRunner()
    trained = runner.invoke(app, ["train", "--model", "ease", "--data", str(env), "--promote"])
    assert trained.exit_code == 0, trained.output
    report = tmp_path / "report.json"

    result = runner.invoke(
        app, ["evaluate", "--model", "ease@production", "--data", str(env), "--json", str(report)]
    )

    assert result.exit_code == 0, result.output
    assert "ease version 1 on its held-out slice" in result.output
    figures = json.loads(report.read_text())
    data = load_dataset(str(env))
    train, heldout = per_user_holdout(data, fraction=0.1, seed=0, min_per_user=2)
    expected = evaluate_topk(
        train_model("ease", data).scorer,
        train.to_csr(),
        heldout.to_csr(values="ones"),
        ks=(10,),  # 12 items: the cut-offs 10 and 20 become 10 and 12
        metrics=("ndcg", "recall"),
        users=np.arange(data.n_users),
    )
    assert figures["version"] == "1" and figures["n_heldout"] == len(heldout)
    for key, value in expected.items():
        assert figures["metrics"][key] == pytest.approx(value, abs=1e-6), key
    assert f"| ndcg@10 | {expected['ndcg@10']:.4f} |" in result.output
    # Every user trains on 4 of their 6 items: one segment holds them all.
    segments = {s["label"]: s for s in figures["by_activity"]["segments"]}
    assert segments["1-4"]["users"] == data.n_users
    assert segments["1-4"]["metrics"]["ndcg@10"] == pytest.approx(expected["ndcg@10"], abs=1e-6)
    assert segments["5-19"] == {"label": "5-19", "users": 0, "metrics": {}}
    assert "| interactions per user | users | ndcg@10 | ndcg@12 | recall@10 |" in result.output
    assert f"| 1-4 | {data.n_users} | {expected['ndcg@10']:.4f} |" in result.output
    assert "| 5-19 | 0 | – | – | – | – |" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "ease@1", "--protocol", "weak-generalization"], "--protocol apply to"),
        (["--model", "ease@1", "--seeds", "0,1", "--set", "l2=1"], "--seeds, --set apply to"),
        (["--model", "ease@1", "--seeds", ""], "--seeds apply to"),  # was ignored silently
        (["--model", "ease@7"], "version 7"),
        (["--model", "ease@"], "NAME@VERSION"),
        (["--model", "ease"], "--protocol is required"),
    ],
)
def test_mistakes_are_one_line_and_exit_2(env: Path, args: list[str], message: str) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["train", "--model", "ease", "--data", str(env)]).exit_code == 0
    result = runner.invoke(app, ["evaluate", "--data", str(env), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output.replace("\n", "")
    assert "Traceback" not in result.output


def test_a_version_with_nan_weights_is_refused_not_measured(
    env: Path, nan_weights_version: str
) -> None:
    """It printed figures (NaN for a rating model) as if the version were servable."""
    result = CliRunner().invoke(
        app, ["evaluate", "--model", f"ease@{nan_weights_version}", "--data", str(env)]
    )
    assert result.exit_code == 2, result.output
    assert "NaN or infinite values in" in result.output.replace("\n", "")
    assert "| metric |" not in result.output and "Traceback" not in result.output


def test_a_version_trained_on_all_its_data_is_refused(env: Path, tmp_path: Path) -> None:
    tiny = tmp_path / "tiny.csv"
    tiny.write_text("user_id,item_id\na,x\na,y\nb,x\n")
    runner = CliRunner()
    assert (
        runner.invoke(app, ["train", "--model", "popularity", "--data", str(tiny)]).exit_code == 0
    )
    result = runner.invoke(app, ["evaluate", "--model", "popularity@1", "--data", str(tiny)])
    assert result.exit_code == 2, result.output
    assert "trained on all 3 interactions" in result.output
    assert "Traceback" not in result.output


def test_a_version_trained_on_the_log_is_measured_on_the_rows_it_read(cli_settings: Path) -> None:
    """``--data db`` reads the log up to the version's own cutoff, not to now: rows
    logged since (and those of the commit margin before its read, left to serving's
    fold-in) are not its data, and reading them made every such version "trained on
    other data"."""
    url = f"sqlite:///{cli_settings}/log.db"
    upgrade_database(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    start = datetime.now(UTC) - timedelta(days=1)
    rows = [
        NewInteraction(f"u{u}", f"i{(u % 2) * 6 + i}", 4.0, start + timedelta(seconds=u * 10 + i))
        for u in range(30)
        for i in range(6)
    ]
    with session_scope(sessions) as session:
        add_interactions(session, rows)
    age_log(url)  # before the read's margin: its data
    with session_scope(sessions) as session:  # within the margin: serving's, not the read's
        add_interactions(session, [NewInteraction("u0", f"i{i}", 5.0) for i in (7, 8, 9)])
    engine.dispose()
    runner = CliRunner()
    trained = runner.invoke(app, ["train", "--model", "ease", "--data", "db"])
    assert trained.exit_code == 0, trained.output

    result = runner.invoke(app, ["evaluate", "--model", "ease@1", "--data", "db"])

    assert result.exit_code == 0, result.output
    assert "ease version 1 on its held-out slice of db" in result.output
