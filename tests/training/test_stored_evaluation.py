"""A stored version measured again on the slice it was not trained on, or a clear refusal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models_store import ModelStore
from tests.training.repeated_pairs import every_pair_twice
from training.data.interactions import Interactions
from training.data.splits import per_user_holdout
from training.evaluate import evaluate_ratings, evaluate_topk
from training.pipeline import data_info, train_and_save, train_model, version_contents
from training.stored_evaluation import StoredEvaluationError, evaluate_stored, split_ref


def _ratings(n_users: int = 60, n_items: int = 30, seed: int = 0) -> Interactions:
    """Two taste groups: even users rate low items, odd users high items."""
    rng = np.random.default_rng(seed)
    users, items = [], []
    for u in range(n_users):
        pool = np.arange(n_items // 2) if u % 2 == 0 else np.arange(n_items // 2, n_items)
        for i in rng.choice(pool, size=8, replace=False):
            users.append(f"u{u}")
            items.append(f"i{i}")
    ratings = rng.integers(1, 6, size=len(users)).astype(float)
    timestamps = np.arange(len(users)) + 1_700_000_000
    return Interactions.from_arrays(users, items, ratings, timestamps)


def _in_process(model: str, data: Interactions, overrides: dict[str, str]) -> dict[str, float]:
    """What the freshly trained model scores on the pipeline's slice, computed here directly."""
    train, heldout = per_user_holdout(data, fraction=0.1, seed=0, min_per_user=2)
    scorer = train_model(model, data, overrides).scorer
    if model == "biased-mf":
        return evaluate_ratings(scorer, train.to_csr(), heldout)
    return evaluate_topk(
        scorer,
        train.to_csr(),
        heldout.to_csr(values="ones"),
        ks=(10, 20),
        metrics=("ndcg", "recall"),
        users=np.arange(data.n_users),
    )


@pytest.mark.parametrize(("model", "overrides"), [("ease", {}), ("biased-mf", {"epochs": "3"})])
def test_stored_version_scores_what_the_in_process_evaluation_scores(
    tmp_path: Path, model: str, overrides: dict[str, str]
) -> None:
    data = _ratings()
    store = ModelStore(tmp_path)
    manifest = train_and_save(store, model, data, overrides=overrides, source="synthetic")

    result = evaluate_stored(store, model, manifest.version, data)

    expected = _in_process(model, data, overrides)
    assert result.metrics.keys() <= expected.keys()
    for key, value in result.metrics.items():
        assert value == pytest.approx(expected[key], abs=1e-6), key
    assert result.metrics == pytest.approx(manifest.metrics, abs=1e-6)
    holdout = manifest.training["holdout"]
    assert result.n_heldout == holdout["n_interactions"] > 0
    assert result.n_train + result.n_heldout == len(data)


def test_an_alias_names_the_version(tmp_path: Path) -> None:
    data = _ratings()
    store = ModelStore(tmp_path)
    train_and_save(store, "ease", data, promote=True)
    train_and_save(store, "ease", data, overrides={"l2": "10"})
    result = evaluate_stored(store, "ease", "production", data)
    assert result.version == "1"


def test_a_version_trained_on_all_its_data_is_refused(tmp_path: Path) -> None:
    tiny = Interactions.from_arrays(["a", "a", "b", "b"], ["x", "y", "x", "z"])
    store = ModelStore(tmp_path)
    manifest = train_and_save(store, "popularity", tiny)
    assert manifest.training["holdout"] is None
    with pytest.raises(StoredEvaluationError, match="trained on all 4 interactions"):
        evaluate_stored(store, "popularity", manifest.version, tiny)


def test_a_tuned_winner_fitted_on_all_its_data_is_refused_and_says_why(tmp_path: Path) -> None:
    from training.pipeline import save_trained
    from training.tuning.refit import refit_winner

    data = _ratings()
    refit = refit_winner("ease", {}, data, lengths=None)
    store = ModelStore(tmp_path)
    manifest = save_trained(
        store, "ease", refit.to_save(), data, "test", training={"refit": refit.record}
    )
    with pytest.raises(StoredEvaluationError, match="genrec tune refits its winner on everything"):
        evaluate_stored(store, "ease", manifest.version, data)


def test_other_data_is_refused(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    manifest = train_and_save(store, "ease", _ratings(seed=0))
    with pytest.raises(StoredEvaluationError, match="trained on other data"):
        evaluate_stored(store, "ease", manifest.version, _ratings(seed=1))


def test_the_same_records_in_another_order_are_refused(tmp_path: Path) -> None:
    """Same fingerprint, but the slice drawn from it would mix training records in."""
    data = _ratings()
    store = ModelStore(tmp_path)
    manifest = train_and_save(store, "ease", data)
    shuffled = data.subset(np.random.default_rng(7).permutation(len(data)))
    assert shuffled.fingerprint() == data.fingerprint()
    with pytest.raises(StoredEvaluationError, match="different order"):
        evaluate_stored(store, "ease", manifest.version, shuffled)


def test_a_version_without_a_record_of_its_slice_is_refused(tmp_path: Path) -> None:
    data = _ratings()
    store = ModelStore(tmp_path)
    result = train_model("ease", data)
    manifest = store.save(
        "ease",
        version_contents(result.scorer, data),
        scorer_config=result.scorer.config,
        hyper_parameters=result.model.config.to_dict(),
        metrics=result.metrics,
        data=data_info(data, "synthetic"),
        training={"selection_metric": result.metric},  # as versions written before the record
    )
    with pytest.raises(StoredEvaluationError, match="does not record how its held-out slice"):
        evaluate_stored(store, "ease", manifest.version, data)


def test_a_version_trained_on_pairs_logged_twice_is_measured_on_its_slice(tmp_path: Path) -> None:
    """Each pair is its latest record in the slice drawn again, as it was in training."""
    data = every_pair_twice(_ratings())
    store = ModelStore(tmp_path)
    manifest = train_and_save(store, "ease", data)
    result = evaluate_stored(store, "ease", manifest.version, data)
    assert result.metrics == pytest.approx(manifest.metrics, abs=1e-6)
    assert result.n_train + result.n_heldout == len(data) // 2


@pytest.mark.parametrize("repeated", [False, True])
def test_a_slice_drawn_from_every_record_is_refused_when_pairs_repeat(
    tmp_path: Path, repeated: bool
) -> None:
    """A version written before repeated pairs were merged drew its slice from every record
    (its record has no ``pairs``): the same slice as now when no pair repeats; with
    repeats its slice held copies of pairs it was fitted on, and it is refused."""
    data = every_pair_twice(_ratings()) if repeated else _ratings()
    result = train_model("ease", data)
    assert result.holdout is not None
    old_record = {k: v for k, v in result.holdout.items() if k != "pairs"}
    store = ModelStore(tmp_path)
    manifest = store.save(
        "ease",
        version_contents(result.scorer, data),
        scorer_config=result.scorer.config,
        hyper_parameters=result.model.config.to_dict(),
        metrics=result.metrics,
        data=data_info(data, "synthetic"),
        training={"selection_metric": result.metric, "holdout": old_record},
    )
    if not repeated:
        measured = evaluate_stored(store, "ease", manifest.version, data)
        assert measured.metrics == pytest.approx(manifest.metrics, abs=1e-6)
        return
    with pytest.raises(StoredEvaluationError, match=r"older genrec.* 480 records of this data"):
        evaluate_stored(store, "ease", manifest.version, data)


def test_split_ref() -> None:
    assert split_ref("ease@3") == ("ease", "3")
    assert split_ref("ease@production") == ("ease", "production")
    assert split_ref("ease") == ("ease", None)
    for bad in ("ease@", "@3"):
        with pytest.raises(StoredEvaluationError, match="NAME@VERSION"):
            split_ref(bad)
