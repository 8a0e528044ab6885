"""The evaluation gate: production scored on the job's slice, and the promotion decision."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable

import numpy as np
import pytest
import torch

from app.retrain.export import concat
from app.retrain.gate import (
    GATE_TOLERANCE,
    MIN_FRESH_RECORDS,
    ProductionOnSlice,
    decide,
    evaluate_production,
    fresh_records,
    gate_figures,
    not_worse,
    production_on_slice,
)
from app.serving.loaded import build_loaded_model
from models_store import ModelStore
from tests.app.conftest import N_ITEMS, N_USERS
from training.data.interactions import Interactions
from training.models import model_class
from training.models.base import History
from training.pipeline import (
    holdout_split,
    holdout_validation,
    train_and_save,
    train_model,
    validation_on,
)

CPU = torch.device("cpu")


@pytest.mark.parametrize(("model", "params"), [("ease", {}), ("biased-mf", {"epochs": 2})])
def test_production_on_its_own_data_reproduces_its_manifest_metrics(
    model: str,
    params: dict[str, object],
    promote_base: Callable[..., str],
    job_store: ModelStore,
    base_data: Interactions,
) -> None:
    """Same data, same seed: the wrapper is the identity and the figures are the manifest's."""
    version = promote_base(model, **params)
    train, validation = holdout_validation(model_class(model), base_data, seed=0)
    assert validation is not None
    result = evaluate_production(job_store, model, base_data, train, validation, CPU)
    assert result is not None
    assert result[0] == version
    expected = job_store.manifest(model, version).metrics
    assert result[1] == pytest.approx(expected, rel=1e-6)


def _grown(base: Interactions) -> Interactions:
    """Base plus two new users, one rating an item nobody had before."""
    extra = Interactions.from_arrays(
        ["fresh1", "fresh1", "fresh2", "fresh2"],
        ["0", "new-item", "1", "3"],
        [5.0, 4.0, 3.0, 5.0],
        [2_000_000_000] * 4,
    )
    return concat(base, extra)


def test_wrapper_remaps_users_and_items(
    promote_base: Callable[..., str], job_store: ModelStore, base_data: Interactions
) -> None:
    version = promote_base("ease")
    production = build_loaded_model(job_store.load("ease", version), CPU)
    data = _grown(base_data)
    wrapper = production_on_slice(production, data, data)
    new_item = data.item_ids.index("new-item")
    known_user, fresh = data.user_ids.index("u3"), data.user_ids.index("fresh1")
    assert int(wrapper.user_map[known_user]) == production.user_index["u3"]
    assert int(wrapper.user_map[fresh]) == -1  # unknown: folded in
    assert int(wrapper.item_map[new_item]) == -1

    items = [data.item_ids.index("0"), new_item]
    history = History.from_lists([items], [[5.0, 4.0]], data.n_items)
    scores = wrapper.score(wrapper.user_state(torch.tensor([fresh]), history))
    assert scores.shape == (1, data.n_items)
    assert scores[0, new_item] == -torch.inf  # production cannot recommend it
    # Known columns are production's own fold-in scores for the history it knows.
    own_history = History.from_lists([[production.item_index["0"]]], [[5.0]], production.n_items)
    own = production.scorer.score(production.scorer.user_state(torch.tensor([-1]), own_history))
    for item_id, prod_index in production.item_index.items():
        assert float(scores[0, data.item_ids.index(item_id)]) == pytest.approx(
            float(own[0, prod_index]), rel=1e-5, abs=1e-6
        )
    subset = wrapper.score(
        wrapper.user_state(torch.tensor([fresh]), history), torch.tensor([new_item, items[0]])
    )
    assert subset[0, 0] == -torch.inf and subset[0, 1] == scores[0, items[0]]


def test_known_user_with_interactions_after_the_cutoff_is_folded_in(
    promote_base: Callable[..., str], job_store: ModelStore, base_data: Interactions
) -> None:
    production = build_loaded_model(job_store.load("ease", promote_base("ease")), CPU)
    late = Interactions.from_arrays(["u5"], ["7"], [4.0], [2_000_000_000])
    data = concat(base_data, late)
    wrapper = production_on_slice(production, data, data)
    assert int(wrapper.user_map[data.user_ids.index("u5")]) == -1
    assert int(wrapper.user_map[data.user_ids.index("u6")]) == production.user_index["u6"]


def test_rating_model_predicts_what_serving_answers_for_items_it_does_not_know(
    promote_base: Callable[..., str], job_store: ModelStore, base_data: Interactions
) -> None:
    """Serving's baseline (the user's mean rating, else the training mean), not the middle
    of the range: production is judged on what it serves."""
    production = build_loaded_model(
        job_store.load("biased-mf", promote_base("biased-mf", epochs=2)), CPU
    )
    data = _grown(base_data)
    wrapper = production_on_slice(production, data, data)
    assert isinstance(wrapper, ProductionOnSlice)
    user, new_item, known = (
        data.user_ids.index("u1"),
        data.item_ids.index("new-item"),
        data.item_ids.index("7"),
    )
    rows = History.from_lists([[0, 1], []], [[5.0, 4.0], []], data.n_items)
    state = wrapper.user_state(torch.tensor([user, -1]), rows)
    predicted = wrapper.predict(state, torch.tensor([new_item, known]))
    assert predicted[:, 0].tolist() == pytest.approx([4.5, production.training_mean])
    # Items production knows are its own prediction, from its own state.
    inner_state = production.scorer.user_state(
        torch.tensor([production.user_index["u1"], -1]),
        History.from_lists(
            [
                [
                    production.item_index[data.item_ids.ids[0]],
                    production.item_index[data.item_ids.ids[1]],
                ],
                [],
            ],
            [[5.0, 4.0], []],
            production.scorer.n_items,
        ),
    )
    own = production.scorer.predict(inner_state, torch.tensor([production.item_index["7"]]))
    assert predicted[:, 1].tolist() == pytest.approx(own[:, 0].tolist())


# --------------------------------------------------------------------------- which records


def _later(base: Interactions, per_user: int = 10) -> Interactions:
    """Base plus ``per_user`` ratings per user logged after anything in base."""
    rng = np.random.default_rng(7)
    users, items = [], []
    for u in range(N_USERS):
        pool = np.arange(u % 2, N_ITEMS, 2)
        users += [f"u{u}"] * per_user
        items += [str(i) for i in rng.choice(pool, size=per_user, replace=False)]
    n = len(users)
    extra = Interactions.from_arrays(
        users, items, rng.integers(1, 6, n).astype(np.float32), 2_000_000_000 + np.arange(n)
    )
    return concat(base, extra)


def test_a_production_that_held_the_slice_out_is_compared_on_all_of_it(
    promote_base: Callable[..., str], job_store: ModelStore, base_data: Interactions
) -> None:
    version = promote_base("ease")
    data = _later(base_data)
    candidate = train_model("ease", data)
    figures = gate_figures(job_store, "ease", data, holdout_split(data), candidate, CPU)
    assert figures.error is None and figures.on == "the same slice"
    assert figures.candidate == candidate.metrics  # its own figures on the whole slice
    assert figures.production is not None and figures.production[0] == version


def _held_out_pairs(data: Interactions, users: set[str]) -> set[tuple[str, str]]:
    split = holdout_split(data)
    assert split is not None
    heldout = split[1]
    pairs = zip(heldout.users.tolist(), heldout.items.tolist(), strict=True)
    named = {(data.user_ids.ids[u], data.item_ids.ids[i]) for u, i in pairs}
    return {pair for pair in named if pair[0] in users}


def test_a_log_that_repeats_earlier_pairs_keeps_production_s_slice_for_other_users(
    base_data: Interactions,
) -> None:
    """The slice is drawn over one record per pair; a pair logged again keeps its first
    record's place, so the slice drawn from the grown data (same seed) is still the one
    production held out for every user who logged nothing new, and the gate does not
    score production on records it was fitted on."""
    again = base_data.subset(
        np.isin(base_data.users, [0, 1]) & (np.arange(len(base_data)) % 3 == 0)
    )
    relogged = Interactions.from_arrays(
        [base_data.user_ids.ids[u] for u in again.users],
        [base_data.item_ids.ids[i] for i in again.items],
        6 - again.ratings,
        np.full(len(again), 2_000_000_000),
    )
    grown = concat(base_data, relogged)
    assert len(grown.latest_per_pair()) == len(base_data) < len(grown)
    changed = set(relogged.user_ids.ids)
    others = set(base_data.user_ids.ids) - changed
    assert _held_out_pairs(grown, others) == _held_out_pairs(base_data, others)


def test_a_production_fitted_on_all_its_data_is_compared_on_newer_records_only(
    job_store: ModelStore, base_data: Interactions
) -> None:
    """A tuned winner saw every record up to its cutoff: only later ones are fair to both."""
    prod = train_and_save(job_store, "ease", base_data, holdout=0.0, promote=True)
    assert prod.training["holdout"] is None
    data = _later(base_data)
    split = holdout_split(data)
    assert split is not None
    candidate = train_model("ease", data)
    figures = gate_figures(job_store, "ease", data, split, candidate, CPU)

    fresh = fresh_records(prod, split[1])
    assert MIN_FRESH_RECORDS <= len(fresh) < len(split[1])
    assert bool((fresh.timestamps >= 2_000_000_000).all())
    assert (
        figures.error is None
        and figures.on == f"the {len(fresh)} held-out records after its cutoff"
    )
    # Both sides measured by the pipeline's own validation on those records alone.
    expected = validation_on(model_class("ease"), data, split[0], fresh).evaluate(candidate.scorer)
    assert figures.candidate == pytest.approx(expected)
    assert figures.candidate != pytest.approx(candidate.metrics)
    assert figures.production is not None and figures.production[0] == prod.version
    gate = decide("auto", "ndcg@10", True, figures.candidate, figures.production, None, figures.on)
    assert "held-out records after its cutoff" in gate.reason


@pytest.mark.parametrize(
    "drawn",
    [{"seed": 1}, {"fraction": 0.2}, {"pairs": None}],
    ids=["another-seed", "another-fraction", "drawn-over-records"],
)
def test_a_production_whose_slice_was_drawn_otherwise_is_compared_on_newer_records_only(
    job_store: ModelStore, base_data: Interactions, drawn: dict[str, object]
) -> None:
    """Its own hold-out was other records, so it was trained on some of this slice's: scored
    on all of it, it would be measured partly on what it had learnt."""
    prod = train_and_save(job_store, "ease", base_data, promote=True)
    assert prod.training["holdout"] is not None
    held = {**prod.training["holdout"], **drawn}
    manifest = dataclasses.replace(prod, training={**prod.training, "holdout": held})
    data = _later(base_data)
    split = holdout_split(data)
    assert split is not None
    candidate = train_model("ease", data)
    fresh = fresh_records(manifest, split[1], candidate.holdout)
    assert MIN_FRESH_RECORDS <= len(fresh) < len(split[1])
    assert bool((fresh.timestamps >= 2_000_000_000).all())
    # Drawn alike, the whole slice is fair.
    assert len(fresh_records(prod, split[1], candidate.holdout)) == len(split[1])


def test_with_too_few_newer_records_an_all_data_production_blocks_promotion(
    job_store: ModelStore, base_data: Interactions
) -> None:
    train_and_save(job_store, "ease", base_data, holdout=0.0, promote=True)
    candidate = train_model("ease", base_data)  # the same data: nothing is newer
    figures = gate_figures(job_store, "ease", base_data, holdout_split(base_data), candidate, CPU)
    assert figures.production is None and figures.error is not None
    assert "fitted on all its data" in figures.error and "only 0 held-out records" in figures.error
    gate = decide("auto", "ndcg@10", True, figures.candidate, None, figures.error)
    assert not gate.promote and "could not be scored" in gate.reason
    assert decide("always", "ndcg@10", True, figures.candidate, None, figures.error).promote


# --------------------------------------------------------------------------- decisions


def test_not_worse_has_a_small_relative_tolerance() -> None:
    assert not_worse(0.300, 0.300, higher_is_better=True)
    assert not_worse(0.300 * (1 - GATE_TOLERANCE / 2), 0.300, higher_is_better=True)
    assert not not_worse(0.290, 0.300, higher_is_better=True)
    assert not_worse(0.95, 0.95 * (1 + GATE_TOLERANCE / 2) ** -1, higher_is_better=False)
    assert not not_worse(1.00, 0.95, higher_is_better=False)  # RMSE went up


CANDIDATE = {"ndcg@10": 0.30}


@pytest.mark.parametrize(
    ("policy", "production", "error", "promote", "reason"),
    [
        ("auto", ("3", {"ndcg@10": 0.25}), None, True, "not worse than production v3"),
        ("auto", ("3", {"ndcg@10": 0.35}), None, False, "is worse than production v3"),
        ("auto", None, None, True, "no production version yet"),
        ("auto", ("3", {}), None, False, "no held-out slice"),
        ("auto", None, "CorruptVersion: bad", False, "could not be scored"),
        ("always", ("3", {"ndcg@10": 0.90}), None, True, "promote=always"),
        ("never", ("3", {"ndcg@10": 0.10}), None, False, "promote=never"),
    ],
)
def test_decide_applies_the_policy(
    policy: str,
    production: tuple[str, dict[str, float]] | None,
    error: str | None,
    promote: bool,
    reason: str,
) -> None:
    gate = decide(policy, "ndcg@10", True, CANDIDATE, production, error)  # type: ignore[arg-type]
    assert gate.promote is promote
    assert reason in gate.reason
    record = gate.to_dict()
    assert record["candidate"] == 0.30 and record["policy"] == policy
    assert record["production"] == (production[1].get("ndcg@10") if production else None)


def test_gate_record_round_trips_through_json() -> None:
    """The record goes into a JSON column and the manifest as is."""
    gate = decide("auto", "rmse", False, {"rmse": 0.9}, ("1", {"rmse": 1.0}))
    assert gate.promote  # lower RMSE is better
    assert json.loads(json.dumps(gate.to_dict(), allow_nan=False)) == gate.to_dict()
