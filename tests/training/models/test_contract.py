"""The model contract, checked for EVERY key in ``training.models.REGISTRY``.

Serving, offline evaluation and the store treat all models alike through
``Scorer``; these tests pin what that requires (CONVENTIONS.md, "The one model
interface"): training reports finite, falling losses; the serving split
(``score(user_state(...))``) ranks exactly as the trained model itself
(``Model.reference_scores``); candidate scoring is column selection; the
artifact round trip (numpy float32, as the store writes) changes nothing;
fold-in follows the history; rating prediction is in range or refused.

Each model is trained once per module on tiny structured data with small
settings (``TINY``), so the whole file stays within seconds per model.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from training.models import REGISTRY
from training.models.base import (
    FitReport,
    History,
    InnerProductScorer,
    Model,
    ModelConfig,
    ModelError,
    NotARatingModel,
    Scorer,
    Validation,
)

# Small settings, applied to whichever of these fields a model's Config has.
GENERIC_TINY: dict[str, Any] = {
    "epochs": 12,
    "batch_size": 32,
    "hidden": 16,
    "hidden_dim": 16,
    "latent_dim": 8,
    "factors": 8,
    "dim": 8,
    "emb_dim": 8,
    "patience": None,
}
# Per-model additions (a model's author may add a line here).
TINY: dict[str, dict[str, Any]] = {
    "biased-mf": {"lr": 0.05},
    "ease": {"l2": 5.0},
    "mult-vae": {"lr": 0.01, "total_anneal_steps": 20, "anneal_cap": 0.2},
    "mult-dae": {"lr": 0.01},
    "irgan": {"pretrain_epochs": 8, "gan_epochs": 3, "d_epochs": 2, "g_epochs": 2},
}
# Models whose score is <query(state), item row> + a per-user constant: they may be
# served from an approximate inner-product index (training/ann.py). EASE is a product
# with an I x I matrix (the "table" would be as wide as the catalog), CF-NADE, I-CF-NADE
# and CF-RBM take an expectation over rating levels, popularity has no user side.
INNER_PRODUCT = {
    "biased-mf",
    "bpr-mf",
    "convmf",
    "i-autorec",
    "irgan",
    "mult-dae",
    "mult-vae",
    "pmf",
    "u-autorec",
}
# Models whose score is the same for every user by design (state ignores history).
HISTORY_FREE = {"popularity"}
TENSOR_NAME = re.compile(r"^[a-z0-9_]+$")


@dataclasses.dataclass
class Fitted:
    name: str
    model: Model
    report: FitReport
    data: Any  # conftest.StructuredData (train, heldout)


def tiny_config(name: str) -> ModelConfig:
    cls = REGISTRY[name]
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    overrides = {k: v for k, v in GENERIC_TINY.items() if k in fields}
    overrides.update(TINY.get(name, {}))
    return cls.Config().with_overrides(overrides)


def tiny_validation(data: Any, hit_rate: Callable[..., float]) -> Validation:
    """Hit rate@5 on the held-out liked items: cheap, and exercises best-epoch selection."""
    return Validation(
        evaluate=lambda scorer: {"hit@5": hit_rate(scorer, data.train, data.heldout, 5)},
        metric="hit@5",
    )


@pytest.fixture(scope="module", params=sorted(REGISTRY))
def fitted(
    request: pytest.FixtureRequest, structured: Any, hit_rate: Callable[..., float]
) -> Fitted:
    name = request.param
    model = REGISTRY[name](tiny_config(name))
    report = model.fit(structured.train, tiny_validation(structured, hit_rate))
    return Fitted(name, model, report, structured)


def training_users(f: Fitted, n: int = 12) -> tuple[torch.Tensor, History]:
    """The first ``n`` training users and their training rows."""
    rows = np.arange(n)
    return torch.as_tensor(rows), History.from_csr(f.data.train.to_csr(), rows)


def assert_same_ranking(a: torch.Tensor, b: torch.Tensor) -> None:
    """Where ``a`` strictly prefers an item to the next in its order, ``b`` must agree.

    Checked both ways, so any strictly monotone transform passes and ties in
    either score (clipping, equal logits) are tolerated.
    """
    for x, y in ((a, b), (b, a)):
        order = torch.argsort(x, dim=1, descending=True, stable=True)
        xs, ys = x.gather(1, order), y.gather(1, order)
        tol_x = 1e-5 * max(1.0, float(x.abs().max()))
        tol_y = 1e-4 * max(1.0, float(y.abs().max()))
        strict = (xs[:, :-1] - xs[:, 1:]) > tol_x
        agree = ys[:, :-1] >= ys[:, 1:] - tol_y
        bad = strict & ~agree
        assert not bool(bad.any()), f"rankings differ at {int(bad.sum())} adjacent pairs"


# --------------------------------------------------------------------------- declarations


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_declarations_are_consistent(name: str) -> None:
    cls = REGISTRY[name]
    assert cls.name == name
    assert cls.scorer_cls.name == name
    assert cls.task in ("ratings", "topk")
    assert issubclass(cls.Config, ModelConfig)
    described = cls.Config.describe()  # a shared setting's help comes from its base
    for f in dataclasses.fields(cls.Config):
        assert not described[f.name].startswith(" (default"), f"{name}: {f.name} has no help"


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_unknown_setting_is_refused_by_name(name: str) -> None:
    with pytest.raises(Exception, match="no_such_setting"):
        REGISTRY[name].Config().with_overrides({"no_such_setting": "1"})


#: A value no training can use for each setting most models share (checked when the
#: config is made, so ``genrec train --set`` and ``POST /admin/retrain`` refuse it).
_UNUSABLE = {
    "seed": -1,
    "epochs": 0,
    "lr": -1.0,
    "batch_size": 0,
    "validate_every": 0,
    "hidden_dim": -1,
    "latent_dim": 0,
    "anneal_cap": -1.0,
    # IRGAN's own step sizes and pre-training batch.
    "pretrain_lr": -1.0,
    "d_lr": 0.0,
    "g_lr": -1.0,
    "pretrain_batch_size": 0,
}


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_unusable_values_are_refused_when_the_config_is_made(name: str) -> None:
    config = REGISTRY[name].Config()
    fields = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    for setting, bad in _UNUSABLE.items():
        if setting in fields:
            with pytest.raises(ModelError, match=setting):
                config.with_overrides({setting: bad})
    for setting, value in fields.items():  # every float setting: NaN is refused by name
        if isinstance(value, float):
            with pytest.raises(ModelError, match=f"{setting} must be a finite number"):
                config.with_overrides({setting: math.nan})


# --------------------------------------------------------------------------- training


def test_fit_report_is_sane_and_loss_falls(fitted: Fitted) -> None:
    report = fitted.report
    assert report.epochs_run >= 1
    assert 1 <= report.best_epoch <= report.epochs_run
    assert len(report.history) == report.epochs_run
    assert all(math.isfinite(v) for e in report.history for v in e.losses.values())
    validated = [e for e in report.history if e.metrics]
    assert validated, "validation was given but no epoch reported metrics"
    best = max(e.metrics["hit@5"] for e in validated)
    assert report.best_metrics["hit@5"] == pytest.approx(best)
    if report.epochs_run > 1:  # iterative: the training loss must fall
        series: dict[str, list[float]] = {}
        for epoch in report.history:
            for key, value in epoch.losses.items():
                series.setdefault(key, []).append(value)
        series = {k: v for k, v in series.items() if len(v) > 1}
        assert series, "an iterative model must report a loss in more than one epoch"
        # "loss" must fall; models without one (phased, adversarial) need one falling series
        checked = {"loss": series["loss"]} if "loss" in series else series
        falling = [k for k, v in checked.items() if v[-1] < v[0]]
        assert falling, f"no training loss fell: { {k: (v[0], v[-1]) for k, v in checked.items()} }"


# --------------------------------------------------------------------------- serving split


def test_scorer_ranks_like_the_trained_model(fitted: Fitted) -> None:
    users, history = training_users(fitted)
    scorer = fitted.model.to_scorer()
    with torch.no_grad():
        served = scorer.score(scorer.user_state(users, history))
        reference = fitted.model.reference_scores(users, history)
    assert served.shape == reference.shape == (len(users), fitted.data.train.n_items)
    assert torch.isfinite(served).all()
    assert_same_ranking(served.float(), reference.float())


def test_candidate_scores_are_the_selected_columns(fitted: Fitted) -> None:
    users, history = training_users(fitted)
    scorer = fitted.model.to_scorer()
    items = torch.tensor([7, 0, 33, 12, 7])
    with torch.no_grad():
        state = scorer.user_state(users, history)
        full, subset = scorer.score(state), scorer.score(state, items)
    assert subset.shape == (len(users), len(items))
    torch.testing.assert_close(subset, full[:, items])


def test_batch_rows_are_independent(fitted: Fitted) -> None:
    """A user's state must not depend on who else is in the batch (it is cached per user)."""
    users, history = training_users(fitted)
    scorer = fitted.model.to_scorer()
    matrix = fitted.data.train.to_csr()
    with torch.no_grad():
        batch = scorer.user_state(users, history)
        for b in (0, 5):
            alone = scorer.user_state(users[b : b + 1], History.from_csr(matrix, [b]))
            torch.testing.assert_close(alone[0], batch[b], rtol=1e-4, atol=1e-5)


def test_artifact_round_trip_keeps_scores(fitted: Fitted) -> None:
    scorer = fitted.model.to_scorer()
    config = json.loads(json.dumps(scorer.config))  # the manifest stores it as JSON
    stored: dict[str, np.ndarray] = {}
    for key, tensor in scorer.tensors().items():
        assert TENSOR_NAME.match(key), f"tensor name {key!r} is not [a-z0-9_]"
        assert tensor.dtype in (torch.float32, torch.int64), f"{key}: {tensor.dtype}"
        stored[key] = tensor.detach().cpu().numpy().copy()
    loaded = type(scorer).from_tensors(config, {k: torch.from_numpy(v) for k, v in stored.items()})
    users, history = training_users(fitted)
    folded = torch.full_like(users, -1)
    with torch.no_grad():
        for who in (users, folded):
            torch.testing.assert_close(
                loaded.score(loaded.user_state(who, history)),
                scorer.score(scorer.user_state(who, history)),
                rtol=0,
                atol=0,
            )


# --------------------------------------------------------------------------- fold-in


def test_fold_in_follows_the_history(fitted: Fitted) -> None:
    scorer = fitted.model.to_scorer()
    n_items = fitted.data.train.n_items
    few = History.from_lists([[0, 1]], [[5.0, 4.0]], n_items)
    more = History.from_lists([[0, 1, 25, 26, 27]], [[5.0, 4.0, 5.0, 5.0, 4.0]], n_items)
    unknown = torch.tensor([-1])
    with torch.no_grad():
        state_few, state_more = scorer.user_state(unknown, few), scorer.user_state(unknown, more)
        scores = scorer.score(state_more)
    assert scores.shape == (1, n_items)
    assert torch.isfinite(scores).all()
    if fitted.name in HISTORY_FREE:
        torch.testing.assert_close(state_few, state_more)
    else:
        assert not torch.allclose(state_few, state_more), "fold-in state ignores the history"


# --------------------------------------------------------------------------- ratings


def test_predict_in_range_or_refused(fitted: Fitted) -> None:
    scorer: Scorer = fitted.model.to_scorer()
    users, history = training_users(fitted)
    with torch.no_grad():
        state = scorer.user_state(users, history)
        if not scorer.predicts_ratings:
            with pytest.raises(NotARatingModel, match=fitted.name):
                scorer.predict(state)
            return
        predicted = scorer.predict(state)
    low, high = fitted.data.train.rating_range
    assert predicted.shape == (len(users), fitted.data.train.n_items)
    assert float(predicted.min()) >= low and float(predicted.max()) <= high


def test_inner_product_form_ranks_like_the_score(fitted: Fitted) -> None:
    """queries(state) . table^T differs from score(state) by a per-user constant only."""
    scorer = fitted.model.to_scorer()
    if fitted.name not in INNER_PRODUCT:
        assert not isinstance(scorer, InnerProductScorer)
        return
    assert isinstance(scorer, InnerProductScorer)
    users, history = training_users(fitted)
    with torch.no_grad():
        state = scorer.user_state(users, history)
        full = scorer.score(state)
        inner = scorer.inner_product_queries(state) @ scorer.inner_product_table().T
    offset = full - inner
    torch.testing.assert_close(offset, offset[:, :1].expand_as(offset), rtol=1e-4, atol=1e-4)
    # A pass in chunks (the covariance at start-up) sees the same rows, and past the end none.
    table = scorer.inner_product_table()
    n = table.shape[0]
    for start, stop in ((0, 3), (2, n), (n - 1, n + 5)):
        torch.testing.assert_close(scorer.inner_product_rows(start, stop), table[start:stop])
    assert len(scorer.inner_product_rows(n, n + 4)) == 0


def test_the_table_tensors_are_all_an_index_needs(fitted: Fitted) -> None:
    """A scorer given only ``table_tensors`` (what ``genrec models index`` loads) has the
    same table, rows and item vectors as the whole scorer."""
    scorer = fitted.model.to_scorer()
    names = type(scorer).table_tensors
    if fitted.name not in INNER_PRODUCT:
        assert names is None  # no index is built for it
        return
    assert isinstance(scorer, InnerProductScorer) and names is not None
    tensors = scorer.tensors()
    assert names <= set(tensors), f"{fitted.name}: {sorted(names - set(tensors))} not saved"
    partial = type(scorer).from_tensors(scorer.config, {k: tensors[k] for k in names})
    assert isinstance(partial, InnerProductScorer)
    torch.testing.assert_close(partial.inner_product_table(), scorer.inner_product_table())
    torch.testing.assert_close(partial.inner_product_rows(1, 4), scorer.inner_product_rows(1, 4))
    vectors, whole = partial.item_vectors(), scorer.item_vectors()
    assert vectors is not None and whole is not None
    torch.testing.assert_close(vectors, whole)
