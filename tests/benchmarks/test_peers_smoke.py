"""Smoke path of the peer benchmark on tiny synthetic data (the real run is not in the suite).

Exercises everything but the peers' own venv (building it needs the network and
minutes): writing the shared splits, genrec's runner (one epoch per model), a
fake peer adapter run as a subprocess exactly as RecBole's or Cornac's is, the
scoring of its predictions file with genrec's metrics, and the report data.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.peers import report
from benchmarks.peers.adapters.common import read_split, topk_excluding
from benchmarks.peers.genrec_runner import run as run_genrec
from benchmarks.peers.run import Library, run_job, synthetic_clicks
from benchmarks.peers.score import (
    ScoreError,
    excluded_rows,
    rating_metrics,
    relevant_rows,
    score_run,
    topk_metrics,
)
from benchmarks.peers.split import SplitSettings, read_interactions, write_splits
from training.data.interactions import Interactions
from training.evaluate import evaluate_topk, rank
from training.models import model_class

N_USERS, N_ITEMS = 120, 150  # the strong protocol ranks 100 items

FAKE_PEER = textwrap.dedent(
    '''
    """A stand-in peer: random item scores, written in the adapters' output format."""
    import numpy as np

    from benchmarks.peers.adapters.common import (
        Recorder, adapter_args, read_split, should_checkpoint, topk_excluding,
    )

    args = adapter_args("fake peer", ["ease", "biased-mf"])
    split = read_split(args.split)
    rng = np.random.default_rng(args.seed)
    recorder = Recorder("fakepeer", args.model, split.protocol, {"epochs": args.epochs},
                        {"fakepeer": "0"})
    for epoch in range(1, args.epochs + 1):
        with recorder.training():
            weights = rng.random(split.n_items)  # "training": a random preference per item
        if not should_checkpoint(epoch, args.epochs, args.every):
            continue
        if split.protocol == "ratings":
            recorder.checkpoint(**{f"{w}_pred": 1 + 4 * rng.random(len(split.parts[w]))
                                   for w in ("valid", "test")})
        else:
            recorder.checkpoint(**{
                f"{w}_topk": topk_excluding(
                    np.tile(weights, (len(split.eval_users(w)), 1)), split.eval_exclude(w))
                for w in ("valid", "test")})
    recorder.write(args.out)
    '''
)


def tiny_ratings(seed: int = 0) -> Interactions:
    """Explicit ratings 1..5 over a synthetic click pattern (every user >= 5 records)."""
    clicks = synthetic_clicks(N_USERS, N_ITEMS, density=0.1, seed=seed)
    rng = np.random.default_rng(seed)
    ratings = rng.integers(1, 6, len(clicks)).astype(np.float32)
    ratings[rng.random(len(clicks)) < 0.7] = 5.0  # enough clicks (> 3.5) per user
    return Interactions(
        clicks.users,
        clicks.items,
        ratings,
        clicks.timestamps,
        clicks.user_ids,
        clicks.item_ids,
        explicit=True,
    )


@pytest.fixture(scope="module")
def splits(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("peers") / "splits"
    return write_splits(
        tiny_ratings(), root, ("strong", "weak", "ratings"), SplitSettings(heldout_users=20)
    )


def test_splits_are_read_back_identically_by_both_sides(splits: dict[str, Path]) -> None:
    for protocol, directory in splits.items():
        meta = json.loads((directory / "meta.json").read_text())
        peer_view = read_split(directory)
        assert peer_view.protocol == protocol
        for name, part in peer_view.parts.items():
            ours = read_interactions(directory, name, explicit=True)
            assert len(part) == len(ours) == meta["sizes"][name]
            np.testing.assert_array_equal(part.users, ours.users)
            np.testing.assert_array_equal(part.items, ours.items)
    strong = read_split(splits["strong"])
    assert 0 < len(strong.eval_users("test")) <= 20  # users left with a held-out click
    # Held-out users never train; the fold-in input is never a relevant item.
    assert not set(strong.parts["train"].users) & set(strong.eval_users("test"))
    overlap = strong.eval_exclude("test").multiply(relevant_rows(splits["strong"], "test"))
    assert overlap.nnz == 0


@pytest.mark.parametrize(
    ("protocol", "model"),
    [("strong", "mult-vae"), ("strong", "ease"), ("weak", "bpr-mf"), ("ratings", "biased-mf")],
)
def test_genrec_runner_one_epoch(
    splits: dict[str, Path], tmp_path: Path, protocol: str, model: str
) -> None:
    result = run_genrec(splits[protocol], model, epochs=1, every=1, seed=0, out=tmp_path)
    assert result["epochs_trained"] == 1
    assert result["checkpoints"][0]["seconds"] >= 0.0
    row = score_run(tmp_path, splits[protocol])
    assert row.peer == "genrec" and row.best_epoch == 1
    assert all(np.isfinite(v) for v in row.metrics.values())
    assert row.peak_rss_mb > 0


def test_scoring_a_predictions_file_equals_genrec_evaluation(splits: dict[str, Path]) -> None:
    """Lists written as a peer would write them score exactly as ``evaluate_topk`` does."""
    directory = splits["strong"]
    train = read_interactions(directory, "train", explicit=False).compact()
    model = model_class("popularity")()
    model.fit(train)
    scorer = model.to_scorer()
    meta = json.loads((directory / "meta.json").read_text())
    users = np.asarray(meta["test_users"])
    fold_in = read_interactions(directory, "test_fold_in", explicit=False).to_csr("ones")
    heldout = read_interactions(directory, "test_heldout", explicit=False).to_csr("ones")
    ranked = rank(scorer, np.full(len(users), -1), fold_in[users], 100, fold_in[users])
    ours = evaluate_topk(
        scorer,
        fold_in,
        heldout,
        ks=(20, 50, 100),
        metrics=("ndcg", "recall"),
        recall_denominator="min",
    )
    got = topk_metrics(ranked, relevant_rows(directory, "test"), "strong")
    assert got == pytest.approx({k: ours[k] for k in got})


def test_fake_peer_subprocess_is_scored_with_genrec_metrics(
    splits: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "fake_peer.py").write_text(FAKE_PEER)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    peer = Library("fakepeer", sys.executable, "fake_peer")
    genrec_out = tmp_path / "genrec"
    run_genrec(splits["strong"], "ease", epochs=1, every=1, seed=0, out=genrec_out)
    rows = [score_run(genrec_out, splits["strong"])]
    for protocol, model in (("strong", "ease"), ("ratings", "biased-mf")):
        out = run_job(peer, splits[protocol], model, 3, 1, 1, tmp_path / protocol, timeout=60)
        row = score_run(out, splits[protocol])
        assert row.peer == "fakepeer" and row.epochs_trained == 3
        assert 1 <= row.best_epoch <= 3
        rows.append(row)
    strong = rows[1]
    assert 0.0 <= strong.metrics["ndcg@100"] <= 1.0
    assert 0.0 <= strong.metrics["recall@20"] <= 1.0
    ratings = rows[2]
    assert ratings.metrics["rmse"] >= ratings.metrics["mae"] > 0.0

    json_path, md_path = report.write(rows, tmp_path, {"command": "smoke", "machine": {}})
    payload = json.loads(json_path.read_text())
    assert [r["peer"] for r in payload["rows"] if r["protocol"] == "strong"] == [
        "genrec",
        "fakepeer",
    ]
    (speedup,) = [s for s in payload["speedups"] if s["protocol"] == "strong"]
    assert speedup["wall"] == pytest.approx(strong.seconds_per_epoch / rows[0].seconds_per_epoch)
    assert "| ease | fakepeer |" in md_path.read_text()


def test_lists_with_excluded_items_are_refused(splits: dict[str, Path], tmp_path: Path) -> None:
    directory = splits["strong"]
    exclude = excluded_rows(directory, "valid")
    good = topk_excluding(np.zeros(exclude.shape), exclude, k=5)
    bad = good.copy()
    row, col = exclude.nonzero()
    bad[row[0], 0] = col[0]  # recommend an item the user gave as input
    for name, lists in (("good", good), ("bad", bad)):
        out = tmp_path / name
        out.mkdir()
        np.savez(out / "predictions.npz", valid_topk=lists[None], test_topk=lists[None])
        (out / "result.json").write_text(
            json.dumps(
                {
                    "peer": name,
                    "model": "m",
                    "protocol": "strong",
                    "checkpoints": [{"epoch": 1, "seconds": 1.0, "cpu_seconds": 1.0}],
                    "epochs_trained": 1,
                    "peak_rss_mb": 1.0,
                    "versions": {},
                    "settings": {},
                }
            )
        )
    with pytest.raises(ScoreError, match="excluded"):
        score_run(tmp_path / "bad", directory)


def test_rating_scoring_applies_genrec_rules(splits: dict[str, Path]) -> None:
    """Clipping into the rating range and the default for unseen users/items, as evaluate_ratings."""
    directory = splits["ratings"]
    test = read_interactions(directory, "test", explicit=True)
    far_out = np.full(len(test), 9.0)  # clipped to 5
    got = rating_metrics(far_out, directory, "test")
    train = read_interactions(directory, "train", explicit=True).to_csr()
    known = (np.diff(train.indptr) > 0)[test.users] & (
        np.bincount(train.indices, minlength=N_ITEMS) > 0
    )[test.items]
    expected = np.where(known, 5.0, 3.0)
    assert got["rmse"] == pytest.approx(float(np.sqrt(np.mean((expected - test.ratings) ** 2))))
    with pytest.raises(ScoreError, match="predictions"):
        rating_metrics(far_out[:-1], directory, "test")
