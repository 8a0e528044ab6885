"""The one data -> model -> artifact path: what a version holds and how it was scored."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from models_store import ModelStore
from tests.training.repeated_pairs import every_pair_twice, latest_copies
from training.data.interactions import Interactions
from training.models import scorer_class
from training.models.base import History, ModelError
from training.pipeline import holdout_split, train_and_save, train_model
from training.segments import from_record, labels
from training.stored_evaluation import evaluate_stored


def _clicks(n_users: int = 60, n_items: int = 30, seed: int = 0) -> Interactions:
    """Two taste groups: even users click low items, odd users high items."""
    rng = np.random.default_rng(seed)
    users, items = [], []
    for u in range(n_users):
        pool = np.arange(n_items // 2) if u % 2 == 0 else np.arange(n_items // 2, n_items)
        for i in rng.choice(pool, size=min(8, len(pool) - 1), replace=False):
            users.append(f"u{u}")
            items.append(f"i{i}")
    ratings = rng.integers(3, 6, size=len(users)).astype(float)
    timestamps = np.arange(len(users)) + 1_700_000_000
    return Interactions.from_arrays(users, items, ratings, timestamps)


def test_train_and_save_writes_a_complete_version(tmp_path: Path) -> None:
    data = _clicks()
    store = ModelStore(tmp_path)
    manifest = train_and_save(store, "ease", data, source="synthetic", promote=True)

    assert store.resolve("ease", "production") == manifest.version
    assert manifest.data.fingerprint == data.fingerprint()
    assert manifest.data.n_interactions == len(data)
    assert manifest.data.cutoff is not None and manifest.data.cutoff.startswith("2023-11-")
    assert manifest.training["selection_metric"] == "ndcg@10"
    assert 0.0 < manifest.metrics["ndcg@10"] <= 1.0

    loaded = store.load("ease", manifest.version)
    assert loaded.contents.user_ids == list(data.user_ids.ids)
    history = data.to_csr()
    np.testing.assert_array_equal(loaded.contents.history["indices"], history.indices)
    # The stored tensors rebuild a scorer that ranks exactly like the trained one.
    result_scorer = scorer_class("ease").from_tensors(
        loaded.manifest.scorer_config,
        {k: torch.from_numpy(v) for k, v in loaded.contents.tensors.items()},
    )
    rows = History.from_csr(history, rows=np.arange(4))
    scores = result_scorer.score(result_scorer.user_state(torch.arange(4), rows))
    assert scores.shape == (4, data.n_items)


@pytest.mark.parametrize(("model", "metric"), [("popularity", "ndcg@10"), ("biased-mf", "rmse")])
def test_manifest_records_the_held_out_figures_per_activity_segment(
    tmp_path: Path, model: str, metric: str
) -> None:
    """Users of 8 records train on 6: all fall in 5-19, and that segment's figures are the
    overall ones; every other segment is recorded, empty, so versions line up."""
    store = ModelStore(tmp_path)
    manifest = train_and_save(
        store, model, _clicks(), {"epochs": "2"} if model != "popularity" else {}
    )
    record = ModelStore(tmp_path).load(model, manifest.version).manifest.training["by_activity"]
    result = from_record(record)
    assert result is not None
    assert [s.label for s in result.segments] == labels()
    got = {s.label: s for s in result.segments}
    assert got["5-19"].users == 60
    assert got["5-19"].metrics[metric] == pytest.approx(manifest.metrics[metric])
    assert all(got[label].users == 0 and not got[label].metrics for label in ("0", "1-4", "100+"))
    # The same figures as ``genrec evaluate NAME@VERSION`` measures on the stored version.
    measured = evaluate_stored(store, model, manifest.version, _clicks())
    assert measured.by_activity == result


def test_segment_means_weighed_by_their_users_are_the_overall_means() -> None:
    """Users of 4, 12 and 40 records train on 2-3, 10-11 and 36: three segments."""
    rng = np.random.default_rng(0)
    users, items = [], []
    for u in range(60):
        for i in rng.choice(60, size=(4, 12, 40)[u % 3], replace=False):
            users.append(f"u{u}")
            items.append(f"i{i}")
    data = Interactions.from_arrays(users, items, np.ones(len(users)), np.arange(len(users)))
    result = train_model("ease", data)
    assert result.by_activity is not None
    segments = [s for s in result.by_activity.segments if s.users]
    assert [(s.label, s.users) for s in segments] == [("1-4", 20), ("5-19", 20), ("20-99", 20)]
    for name, value in result.metrics.items():
        weighted = sum(s.users * s.metrics[name] for s in segments) / 60
        assert weighted == pytest.approx(value)


def test_ranking_model_is_selected_on_held_out_clicks() -> None:
    result = train_model("mult-vae", _clicks(), {"epochs": "3"})
    assert result.metric == "ndcg@10" and result.higher_is_better
    assert result.report.epochs_run == 3
    assert set(result.metrics) >= {"ndcg@10", "recall@20"}


def test_rating_model_is_selected_on_held_out_rmse() -> None:
    result = train_model("biased-mf", _clicks(), {"epochs": "2"})
    assert result.metric == "rmse" and not result.higher_is_better
    assert result.metrics["rmse"] > 0


def test_catalogue_smaller_than_the_cutoffs_is_ranked_whole(tmp_path: Path) -> None:
    data = _clicks(n_users=40, n_items=8)
    manifest = train_and_save(ModelStore(tmp_path), "popularity", data)
    assert manifest.training["selection_metric"] == "ndcg@8"


def test_unknown_setting_is_refused_before_training() -> None:
    from training.models.base import ModelError

    with pytest.raises(ModelError, match="unknown setting 'nope'"):
        train_model("ease", _clicks(), {"nope": "1"})


def test_manifest_records_the_per_epoch_curve(tmp_path: Path) -> None:
    """One row per epoch run, with the losses and the validation metrics the trainer saw."""
    torch.set_num_threads(1)
    store = ModelStore(tmp_path)
    overrides = {"epochs": 3, "hidden_dim": 16, "latent_dim": 8, "patience": 10}
    manifest = train_and_save(store, "mult-vae", _clicks(), overrides, source="synthetic")
    curve = manifest.training["curve"]
    assert [row["epoch"] for row in curve] == list(range(1, manifest.training["epochs_run"] + 1))
    assert len(curve) == 3
    metric = manifest.training["selection_metric"]
    best = curve[manifest.training["best_epoch"] - 1]
    assert best["metrics"][metric] == max(row["metrics"][metric] for row in curve)
    assert all(row["losses"] and row["seconds"] >= 0 for row in curve)
    closed_form = train_and_save(store, "ease", _clicks(), source="synthetic")
    assert len(closed_form.training["curve"]) == closed_form.training["epochs_run"] == 1


def test_a_diverged_training_is_refused_and_nothing_is_saved(tmp_path: Path) -> None:
    """lr=1e30 makes biased MF's weights NaN; without validation the last epoch is
    kept, and saving it failed as a FAISS traceback while its index was built."""
    store = ModelStore(tmp_path)
    with pytest.raises(ModelError, match=r"training diverged: .* NaN or infinite"):
        train_and_save(
            store,
            "biased-mf",
            _clicks(),
            source="synthetic",
            overrides={"lr": 1e30, "epochs": 3, "patience": None},
            holdout=0.0,
        )
    assert store.list_models() == []


def test_a_loss_that_diverges_after_the_best_epoch_is_a_gap_in_the_saved_curve(
    tmp_path: Path,
) -> None:
    """Validation keeps the best (finite) epoch; the NaN epochs after it made the
    manifest "not JSON-serialisable". They are recorded as null."""
    manifest = train_and_save(
        ModelStore(tmp_path),
        "biased-mf",
        _clicks(),
        source="synthetic",
        overrides={"lr": 1e30, "epochs": 3, "patience": None},
    )
    curve = manifest.training["curve"]
    assert manifest.training["best_epoch"] == 1 and np.isfinite(curve[0]["losses"]["loss"])
    assert curve[-1]["losses"]["loss"] is None and curve[-1]["metrics"]["rmse"] is None


def test_non_finite_scorer_constants_are_found_inside_lists_and_numpy_scalars() -> None:
    """A rating range of [4.0, inf] (a list) is what an overflowed rating left behind."""
    from training.pipeline import _all_finite

    assert not _all_finite([4.0, float("inf")])
    assert not _all_finite(np.float32("nan"))
    assert not _all_finite({"range": [1.0, float("-inf")]})
    assert _all_finite({"range": [1.0, 5]}) and _all_finite("text") and _all_finite(None)


def test_rating_figures_on_a_0_1_scale_are_what_serving_answers() -> None:
    """A held-out pair the model cannot predict (its item was rated once, so it is cold in
    any split) counts with what serving answers for it: the user's mean training rating
    (``app.serving.recommend.prediction_baseline``). It counted as 3, off a 0-1 scale: on
    the operator's data the validation RMSE stuck at 1.40 (33 of 120 pairs at 3) while
    the training RMSE fell to 0.06."""
    torch.set_num_threads(1)
    base = _clicks()
    users = [base.user_ids.ids[u] for u in base.users]
    items = [f"tail{n}" if n % 4 == 0 else base.item_ids.ids[i] for n, i in enumerate(base.items)]
    data = Interactions.from_arrays(users, items, (base.ratings - 1) / 4, base.timestamps)
    result = train_model("biased-mf", data, {"epochs": "3", "patience": None})

    split = holdout_split(data, seed=0)
    assert split is not None
    train, heldout = split
    csr = train.to_csr()
    counts = np.diff(csr.indptr)
    known_item = np.bincount(csr.indices, minlength=data.n_items) > 0
    predictable = (counts[heldout.users] > 0) & known_item[heldout.items]
    assert 0 < (~predictable).sum() == result.metrics["n_default"]
    scorer = result.scorer
    predicted = np.empty(len(heldout))
    for n, (u, i) in enumerate(zip(heldout.users, heldout.items, strict=True)):
        row = csr[u]
        if predictable[n]:
            state = scorer.user_state(torch.tensor([u]), History.from_csr(csr, rows=[u]))
            predicted[n] = float(scorer.predict(state, torch.tensor([i]))[0, 0])
        else:
            predicted[n] = row.data.mean()  # every held-out user keeps training records
    served = np.sqrt(np.mean((predicted - heldout.ratings) ** 2))
    assert result.metrics["rmse"] == pytest.approx(served, abs=1e-5)
    assert result.metrics["rmse"] < 0.5  # a 3 on a 0-1 scale is >= 2 off


@pytest.mark.parametrize(
    ("model", "overrides"), [("popularity", {}), ("biased-mf", {"epochs": "2"})]
)
def test_a_pair_logged_twice_is_one_record_in_the_fit_and_the_slice(
    model: str, overrides: dict[str, str]
) -> None:
    """Split record by record, one copy of a repeated pair was held out and the other
    trained on: masked as seen, or its rating leaked (popularity's NDCG@10 on the bug
    hunt's log of pairs logged twice: 0.0000, 0.1642 without the repeats). Each pair is
    now its latest record, so the log validates as the pairs logged once would."""
    torch.set_num_threads(1)
    data = _clicks()
    twice = train_model(model, every_pair_twice(data), overrides)
    once = train_model(model, latest_copies(data), overrides)
    assert twice.metrics == once.metrics
    assert twice.holdout == once.holdout  # the same slice, its fingerprint included
    assert twice.holdout is not None and twice.holdout["pairs"] == "latest"
    if model == "popularity":
        assert twice.metrics["ndcg@10"] > 0.1


def _ml100k_users(data_dir: Path, n_users: int) -> Interactions:
    """Every rating of MovieLens-100K's users 1..n_users."""
    rows = [line.split("\t") for line in (data_dir / "ml-100k" / "u.data").read_text().split("\n")]
    kept = [row for row in rows if len(row) == 4 and int(row[0]) <= n_users]
    return Interactions.from_arrays(
        [row[0] for row in kept],
        [row[1] for row in kept],
        np.array([float(row[2]) for row in kept]),
        np.array([int(row[3]) for row in kept]),
    )


def test_manifest_figures_are_the_saved_scorers_after_a_post_fit_step(
    tmp_path: Path, data_dir: Path
) -> None:
    """i-cf-nade re-fits every user's rows after its last validated epoch (``refit_users``):
    the manifest measures the version it saves, as ``genrec evaluate NAME@VERSION`` does,
    not the kept epoch's jointly trained rows (an RMSE no saved version had)."""
    data = _ml100k_users(data_dir, 60)
    store = ModelStore(tmp_path)
    settings = {"hidden": "16", "epochs": "2", "patience": "none", "fold_in_steps": "10"}
    manifest = train_and_save(store, "i-cf-nade", data, overrides=settings, source="ml-100k")

    measured = evaluate_stored(store, "i-cf-nade", manifest.version, data)

    assert set(manifest.metrics) >= {"rmse", "mae"}
    assert measured.metrics == pytest.approx(manifest.metrics, rel=1e-5, abs=1e-6)
    # Not vacuous: the refit moved the figures away from the kept epoch's.
    kept = manifest.training["curve"][manifest.training["best_epoch"] - 1]["metrics"]
    assert abs(kept["rmse"] - manifest.metrics["rmse"]) > 1e-3
