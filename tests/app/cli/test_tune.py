"""``genrec tune`` end to end on real ML-100K users: leaderboard, plot, manifest, gate, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from app.cli import app
from models_store import ModelStore
from tests.training.tuning.ml100k_slice import write_slice


@pytest.fixture
def env(cli_settings: Path, data_dir: Path) -> Path:
    """150 real ML-100K users as a CSV (overrides the small synthetic file)."""
    return write_slice(data_dir, cli_settings / "ml100k-150.csv")


def tune(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["tune", *args])
    return result.exit_code, result.stdout, result.output


def test_tune_prints_the_board_saves_the_winner_with_its_report_and_promotes(
    env: Path, tmp_path: Path
) -> None:
    png = tmp_path / "search.png"
    code, stdout, output = tune(
        "--data", str(env), "--models", "popularity,ease,biased-mf", "--trials", "6",
        "--json", "--plot", str(png), "--promote",
    )  # fmt: skip
    assert code == 0, output
    assert "trial   0 popularity" in output and "left" in output  # the live progress lines
    report = json.loads(stdout)
    board = report["leaderboard"]
    assert {row["model"] for row in board} == {"popularity", "ease", "biased-mf"}
    values = [row["value"] for row in board if row["value"] is not None]
    assert values == sorted(values, reverse=True)  # ndcg@100: best first
    assert report["winner"]["model"] == board[0]["model"] == "ease"
    assert report["metric"] == "ndcg@100" and report["split"]["kind"] == "users"
    assert png.read_bytes()[:4] == b"\x89PNG"
    # Per user-activity segment, the best model on the same validation users, and the line
    # that says so beside the segment's user count.
    best = report["best_by_activity"]
    assert best and {row["model"] for row in best} <= {"popularity", "ease", "biased-mf"}
    for row in best:
        line = (
            f"users with {row['label']} training interactions ({row['users']:,} users): "
            f"{row['model']} {row['value']:.4f}"
        )
        assert line in output
    assert all(row["by_activity"] for row in board if row["value"] is not None)
    assert report["gate"]["promote"] and report["promoted"]

    store = ModelStore(tmp_path / "store")
    manifest = store.manifest("ease", report["version"])
    saved = manifest.training["tuning"]
    assert saved["leaderboard"] == board and saved["seed"] == 0
    assert manifest.hyper_parameters["l2"] == board[0]["settings"]["l2"]
    assert manifest.training["gate"]["reason"] == "no production version yet"
    assert store.alias_state("ease") == report["version"]
    # Closed-form EASE is saved as fitted on all the data; its figures are the checked
    # fit's on the 10% slice, which the saved model did not hold out.
    refit = manifest.training["refit"]
    assert refit["plan"] == "once" and refit["data"] == "all"
    assert refit["checked_on_slice"]["fraction"] == 0.1 and manifest.training["holdout"] is None
    assert manifest.metrics["ndcg@10"] == report["gate"]["candidate"]


def test_promote_only_moves_production_when_the_gate_passes(env: Path, tmp_path: Path) -> None:
    """Production fitted on every record (the gate's slice included) and nothing newer:
    the gate cannot compare the two fairly, so the winner is saved but not promoted."""
    from training.data.datasets import load_dataset
    from training.pipeline import train_and_save

    store = ModelStore(tmp_path / "store")
    train_and_save(store, "ease", load_dataset(str(env)), holdout=0.0, promote=True)
    code, stdout, output = tune(
        "--data", str(env), "--models", "ease", "--trials", "2", "--json",
        "--plot", str(tmp_path / "p.png"), "--promote",
    )  # fmt: skip
    assert code == 0, output
    report = json.loads(stdout)
    assert not report["gate"]["promote"] and not report["promoted"]
    assert "production v1 was fitted on all its data" in report["gate"]["reason"]
    assert "only 0 held-out records are newer" in report["gate"]["reason"]
    assert "not promoted: the winner did not pass the gate" in output
    assert store.alias_state("ease") == "1"
    assert report["version"] == "2"  # saved all the same, for the operator to inspect


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--models", "ease,nope"], "unknown model(s) nope"),
        (["--models", "ease", "--task", "ratings"], "ease only rank items"),
        (["--task", "clicks"], "unknown task 'clicks'"),
        (["--budget-minutes", "0.1"], "too small for one trial"),
        (["--budget-minutes", "nan"], "--budget-minutes is not a number (nan)"),
        (["--trials", "0"], "--trials must be at least 1"),
        (["--trials", "1000001"], "--trials must be at most 1,000,000, got 1000001"),
        (["--models", ","], "--models is empty"),
        (["--split", "time", "--metric", "rmse"], "ndcg@K or recall@K"),
        (["--models", "ease", "--storage", "bogus://x"], "cannot open the study storage"),
        (["--seed=-1"], "--seed must be between 0 and 4294967295, got -1"),
        (["--seed", "4294967296"], "--seed must be between 0 and 4294967295, got 4294967296"),
    ],
)
def test_bad_input_is_one_clear_line(env: Path, args: list[str], message: str) -> None:
    code, _, output = tune("--data", str(env), *args)
    assert code == 2, output
    assert message in output
    assert "Traceback" not in output


def test_an_unreachable_storage_is_one_line_before_the_data_is_read(env: Path) -> None:
    """It was checked after the load, in three lines (the driver's text, then SQLAlchemy's
    "Background on this error at: https://sqlalche.me/..."), password included."""
    code, _, output = tune(
        "--data", str(env), "--models", "ease",
        "--storage", "postgresql://genrec:s3cret@127.0.0.1:1/tune",
    )  # fmt: skip
    assert code == 2, output
    assert "loading data" not in output
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    assert lines[0].startswith("error: cannot open the study storage ")
    assert "postgresql://genrec:***@127.0.0.1:1/tune" in lines[0]
    assert "Connection refused" in lines[0] and "sqlalche.me" not in lines[0]
    assert "s3cret" not in output


def _interrupt(*args: object, **kwargs: object) -> None:
    raise KeyboardInterrupt


def test_ctrl_c_is_one_line_saying_what_was_kept(
    env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It exited 130 without a word, which reads like a finished command."""
    import training.tuning.search

    monkeypatch.setattr(training.tuning.search, "run_search", _interrupt)
    code, _, output = tune("--data", str(env), "--models", "ease")
    assert code == 130, output
    assert output.strip().splitlines()[-1] == "interrupted; nothing saved"
    url = f"sqlite:///{tmp_path / 'study.db'}"
    code, _, output = tune(
        "--data", str(env), "--models", "ease", "--storage", url, "--study-name", "s1"
    )  # fmt: skip
    assert code == 130, output
    assert output.strip().splitlines()[-1] == (
        f"interrupted; no version saved; the finished trials of study 's1' are kept in {url}: "
        "rerun with the same --storage and --study-name to resume it"
    )
    assert "Traceback" not in output


def test_sigterm_is_one_line_and_143(
    env: Path, monkeypatch: pytest.MonkeyPatch, sigterm: Any
) -> None:
    """SIGTERM killed ``tune`` outright (no line, no clean-up); it now ends as Ctrl-C does."""
    import signal

    import training.tuning.search

    monkeypatch.setattr(training.tuning.search, "run_search", sigterm)
    code, _, output = tune("--data", str(env), "--models", "ease")
    assert code == 143, output
    assert output.strip().splitlines()[-1] == "interrupted; nothing saved"
    assert "Traceback" not in output and "UnhandledSigterm" not in output
    assert signal.getsignal(signal.SIGTERM) is sigterm.handler


def test_too_few_users_for_the_split_is_one_clear_line(data_dir: Path, tmp_path: Path) -> None:
    few = write_slice(data_dir, tmp_path / "few.csv", n_users=12)
    code, _, output = tune("--data", str(few), "--models", "ease")
    assert code == 2, output
    assert "12 users; tuning needs at least 20" in output
    assert "Traceback" not in output


def _all_ratings_equal(env: Path) -> Path:
    """The same users and items, every rating 4 (a log with one rating value)."""
    lines = env.read_text().splitlines()
    rows = [",".join([*line.split(",")[:2], "4", line.split(",")[3]]) for line in lines[1:]]
    path = env.with_name("equal.csv")
    path.write_text("\n".join([lines[0], *rows]) + "\n")
    return path


def test_a_model_that_cannot_train_on_the_data_is_dropped_with_one_line(
    env: Path, tmp_path: Path
) -> None:
    code, stdout, output = tune(
        "--data", str(_all_ratings_equal(env)), "--task", "ratings",
        "--models", "cf-nade,biased-mf", "--trials", "3", "--json",
        "--plot", str(tmp_path / "p.png"),
    )  # fmt: skip
    assert code == 0, output
    line = "dropped cf-nade: model 'cf-nade' needs at least two distinct rating values; got [4.0]"
    lines = output.splitlines()
    assert lines.count(line) == 2  # as it is left out, and again under the leaderboard
    assert lines.index(line) < min(i for i, s in enumerate(lines) if s.startswith("trial"))
    assert not [s for s in lines if s.startswith("trial") and "cf-nade" in s]  # no trial spent
    report = json.loads(stdout)
    assert report["dropped"] == {"cf-nade": line.removeprefix("dropped cf-nade: ")}
    assert [row["model"] for row in report["leaderboard"]] == ["biased-mf"]


def test_data_no_named_model_can_train_on_is_one_clear_line(env: Path) -> None:
    code, _, output = tune(
        "--data", str(_all_ratings_equal(env)), "--task", "ratings", "--models", "cf-nade",
        "--trials", "5",
    )  # fmt: skip
    assert code == 2, output
    assert "no candidate can train on this data: cf-nade: model 'cf-nade' needs at least" in output
    assert "Traceback" not in output


def test_no_plot_is_written_unless_asked(
    env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default was ``tune-search.png`` in the working directory: a stray file in a clone."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    code, stdout, output = tune(
        "--data", str(env), "--models", "popularity", "--trials", "1", "--json"
    )
    assert code == 0, output
    assert json.loads(stdout)["plot"] is None
    assert list(work.iterdir()) == [] and "plot of the search" not in output
