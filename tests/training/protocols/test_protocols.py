"""Every protocol runs end to end on tiny data with registry models (popularity, biased-mf)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.training.protocols.conftest import synthetic_ratings, write_tab
from training.data.interactions import Interactions
from training.data.splits import random_split
from training.protocols import PROTOCOLS, ProtocolError, protocol
from training.protocols.__main__ import main
from training.protocols.irgan import read_irgan_ml100k

FAST_MF = {"epochs": "3", "factors": "4", "batch_size": "256"}


def _check_report(report, headline: list[str], n_runs: int) -> None:
    assert report.headline == headline
    assert len(report.runs) == n_runs
    for run in report.runs:
        assert set(headline) <= set(run.metrics)
        assert all(np.isfinite(run.metrics[k]) for k in headline)
        assert 1 <= run.best_epoch <= run.epochs_run
    for key in headline:
        assert report.mean[key] == pytest.approx(np.mean([r.metrics[key] for r in report.runs]))
    markdown = report.to_markdown()
    assert all(f"| {k} |" in markdown for k in headline)
    assert report.command() in markdown
    assert json.loads(report.to_json())["mean"] == pytest.approx(report.mean)


def test_registry_lists_the_six_protocols() -> None:
    assert set(PROTOCOLS) == {
        "strong-generalization",
        "weak-generalization",
        "ratings-random",
        "ratings-folds",
        "irgan",
        "ratings-split",
    }
    with pytest.raises(ProtocolError, match="unknown protocol"):
        protocol("leave-one-out")


def test_strong_generalization_end_to_end(ratings_data: Interactions) -> None:
    report = protocol("strong-generalization").run(
        "popularity",
        ratings_data,
        seeds=[0, 1],
        overrides={},
        options={"heldout_users": "10", "click_threshold": "2.5"},
    )
    _check_report(report, ["ndcg@100", "recall@20", "recall@50"], 2)
    assert all(0 < r.metrics["test_users"] <= 10 for r in report.runs)
    assert all(0 <= r.metrics["recall@50"] <= 1 for r in report.runs)


def test_strong_generalization_with_an_iterative_model(ratings_data: Interactions) -> None:
    report = protocol("strong-generalization").run(
        "biased-mf",
        ratings_data,
        seeds=[3],
        overrides=FAST_MF,
        options={"heldout_users": "10", "click_threshold": "2.5"},
    )
    _check_report(report, ["ndcg@100", "recall@20", "recall@50"], 1)


def test_strong_generalization_refuses_too_few_users(ratings_data: Interactions) -> None:
    with pytest.raises(ProtocolError, match="heldout_users"):
        protocol("strong-generalization").run("popularity", ratings_data, seeds=[0])


def test_weak_generalization_end_to_end(ratings_data: Interactions) -> None:
    report = protocol("weak-generalization").run(
        "biased-mf", ratings_data, seeds=[0], overrides=FAST_MF
    )
    _check_report(report, ["precision@5", "recall@5", "ndcg@5", "mrr@5"], 1)
    test = random_split(ratings_data, (0.6, 0.2, 0.2), 0)[2]  # the protocol's split for seed 0
    assert report.runs[0].metrics["test_users"] == len(np.unique(test.users))


def test_ratings_random_is_seeded(ratings_data: Interactions) -> None:
    run = protocol("ratings-random").run
    a = run("biased-mf", ratings_data, seeds=[0, 1], overrides=FAST_MF)
    b = run("biased-mf", ratings_data, seeds=[0], overrides=FAST_MF)
    _check_report(a, ["rmse", "mae"], 2)
    assert a.runs[0].metrics["rmse"] == pytest.approx(b.runs[0].metrics["rmse"])
    assert a.runs[0].metrics["n"] == round(0.1 * len(ratings_data))
    assert a.runs[0].metrics["rmse"] != a.runs[1].metrics["rmse"]


def test_rating_protocols_refuse_ranking_only_models(ratings_data: Interactions) -> None:
    for name in ("ratings-random", "ratings-split", "ratings-folds"):
        with pytest.raises(ProtocolError, match="only ranks"):
            protocol(name).run("popularity", ratings_data, seeds=[0])


@pytest.mark.parametrize(
    ("seeds", "message"),
    [
        ([], "no seeds given"),  # an empty report
        ([-1], r"seed -1 is out of range; seeds must be in \[0, 2\^32\)"),  # numpy's traceback
        ([2**32], "seed 4294967296 is out of range"),
        ([3, 1, 3], r"seed\(s\) 3 given more than once"),
    ],
)
def test_seeds_no_run_can_use_are_refused(
    ratings_data: Interactions, seeds: list[int], message: str
) -> None:
    with pytest.raises(ProtocolError, match=message):
        protocol("weak-generalization").run("popularity", ratings_data, seeds=seeds)


def test_unknown_option_is_named(ratings_data: Interactions) -> None:
    with pytest.raises(ProtocolError, match="known: default_rating"):
        protocol("ratings-random").run(
            "biased-mf", ratings_data, seeds=[0], options={"tets_fraction": "0.2"}
        )


def test_ratings_split_with_sparser_training(ratings_data: Interactions) -> None:
    full = protocol("ratings-split").run("biased-mf", ratings_data, seeds=[0], overrides=FAST_MF)
    sparse = protocol("ratings-split").run(
        "biased-mf",
        ratings_data,
        seeds=[0],
        overrides=FAST_MF,
        options={"train_fraction": "0.2"},
    )
    _check_report(full, ["rmse", "mae"], 1)
    # the covering split leaves no unseen user or item; thinning the training part does
    assert full.runs[0].metrics["n_default"] == 0
    assert sparse.runs[0].metrics["n_default"] > 0
    assert "--option train_fraction=0.2" in sparse.command()


def _ml100k_folder(root: Path, data: Interactions) -> Path:
    folder = root / "ml-100k"
    folder.mkdir()
    rows = np.random.default_rng(0).permutation(len(data))
    write_tab(folder / "u.data", data, rows)
    for fold in (1, 2):
        test = rows[(fold - 1) :: 5]
        base = np.setdiff1d(rows, test)
        write_tab(folder / f"u{fold}.base", data, base)
        write_tab(folder / f"u{fold}.test", data, test)
    return root


def test_ratings_folds_end_to_end(tmp_path: Path, ratings_data: Interactions) -> None:
    root = _ml100k_folder(tmp_path, ratings_data)
    report = protocol("ratings-folds").run(
        "biased-mf",
        "ml-100k",
        seeds=[0],
        overrides=FAST_MF,
        data_dir=root,
        options={"folds": "u1,u2"},
    )
    _check_report(report, ["rmse", "mae"], 2)
    assert [r.seed for r in report.runs] == [1, 2]
    assert report.runs[0].metrics["n"] == len(range(0, len(ratings_data), 5))  # every 5th record


def test_irgan_reader_and_protocol(tmp_path: Path, ratings_data: Interactions) -> None:
    folder = tmp_path / "irgan-ml-100k"
    folder.mkdir()
    test_rows = np.arange(len(ratings_data)) % 5 == 0
    write_tab(folder / "movielens-100k-train.txt", ratings_data, np.flatnonzero(~test_rows), False)
    write_tab(folder / "movielens-100k-test.txt", ratings_data, np.flatnonzero(test_rows), False)
    train, test = read_irgan_ml100k(folder)
    assert train.item_ids is test.item_ids and train.user_ids is test.user_ids
    assert len(train) + len(test) == len(ratings_data)
    assert train.user_ids.ids[0] == "0"  # 0-based ids read as written

    report = protocol("irgan").run("popularity", "irgan-ml-100k", seeds=[0], data_dir=tmp_path)
    headline = ["precision@3", "precision@5", "precision@10", "ndcg@3", "ndcg@5", "ndcg@10"]
    _check_report(report, headline, 1)
    positives_per_user = np.bincount(test.users[test.ratings > 3.99], minlength=test.n_users)
    assert report.runs[0].metrics["test_users"] == (positives_per_user > 0).sum()

    selected = protocol("irgan").run(
        "biased-mf",
        str(folder),
        seeds=[0],
        overrides=FAST_MF,
        options={"valid_fraction": "0.2"},
    )
    _check_report(selected, headline, 1)


def test_module_runner_reads_a_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = synthetic_ratings(seed=1)
    path = tmp_path / "ratings.csv"
    lines = ["user_id,item_id,rating,timestamp"]
    lines += [
        f"{data.user_ids.external(u)},{data.item_ids.external(i)},{r:g},{t}"
        for u, i, r, t in zip(data.users, data.items, data.ratings, data.timestamps, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    argv = ["ratings-random", "--model", "biased-mf", "--data", str(path), "--json"]
    argv += [arg for key, value in FAST_MF.items() for arg in ("--set", f"{key}={value}")]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["protocol"] == "ratings-random" and out["runs"][0]["metrics"]["n"] > 0
