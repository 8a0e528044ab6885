"""BPR-MF: sampling, the BPR step, deterministic fold-in, and accuracy on structured data."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from torch.nn.functional import softplus

from training.data.interactions import Interactions
from training.models import REGISTRY
from training.models.base import History, ModelError
from training.models.bpr import BPRMF, BPRConfig
from training.models.common.mf import MFScorer, fold_in_bpr
from training.models.common.pairwise import TripleSampler, positive_matrix
from training.models.popularity import Popularity

TINY = {"dim": 8, "epochs": 25, "batch_size": 32, "lr": 0.05, "reg": 1e-3, "patience": None}


@pytest.fixture(scope="module")
def fitted(structured) -> tuple[BPRMF, list[float]]:
    model = BPRMF(BPRConfig(positive_threshold=3.5).with_overrides(TINY))
    report = model.fit(structured.train)
    return model, [e.losses["bpr"] for e in report.history]


def test_registered_under_its_name() -> None:
    assert REGISTRY["bpr-mf"] is BPRMF
    assert BPRMF.scorer_cls.name == "bpr-mf"


def test_loss_is_finite_and_falls(fitted: tuple[BPRMF, list[float]]) -> None:
    _, losses = fitted
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.5 * losses[0], losses
    assert losses[0] < math.log(2) + 0.05  # starts near -ln σ(0): random ranking


def test_beats_popularity_on_structured_data(
    fitted: tuple[BPRMF, list[float]], structured, hit_rate: Callable[..., float]
) -> None:
    model, _ = fitted
    popularity = Popularity()
    popularity.fit(structured.train)
    ours = hit_rate(model.to_scorer(), structured.train, structured.heldout, 5)
    baseline = hit_rate(popularity.to_scorer(), structured.train, structured.heldout, 5)
    assert ours > baseline + 0.05, (ours, baseline)


def test_sampled_negatives_are_never_positives() -> None:
    positives = sp.csr_matrix(np.eye(6, 8, dtype=np.float32) + np.eye(6, 8, k=1))
    sampler = TripleSampler(positives, np.random.default_rng(0))
    users = np.repeat(np.arange(6), 50)
    negatives = sampler.negatives(users, 3)
    assert negatives.shape == (300, 3)
    assert not positives[np.repeat(users, 3), negatives.ravel()].any()
    batches = sampler.epoch(batch_size=5)
    assert sum(len(u) for u, _ in batches) == len(sampler) == 12
    for u, i in batches:
        assert sampler.is_positive(u, i).all()


def test_threshold_keeps_only_liked_items() -> None:
    data = Interactions.from_arrays([1, 1, 2], [10, 11, 10], [5.0, 2.0, 4.0])
    assert positive_matrix(data, 3.5).nnz == 2
    with pytest.raises(ModelError, match="no positive interactions"):
        positive_matrix(data, 5.0)


def test_fold_in_minimises_the_bpr_objective() -> None:
    torch.manual_seed(0)
    q, b = torch.randn(30, 4), 0.1 * torch.randn(30)
    history = History.from_lists([[1, 4, 9]], None, 30)

    def objective(s: torch.Tensor) -> float:
        pos = torch.zeros(30, dtype=torch.bool)
        pos[[1, 4, 9]] = True
        x = q @ s + b
        return float(softplus(-(x[pos][:, None] - x[~pos][None, :])).mean() + 0.01 * s @ s)

    values = [
        objective(fold_in_bpr(q, b, history, reg=0.01, steps=n)[0]) for n in (0, 1, 3, 10, 40)
    ]
    assert all(later <= earlier + 1e-6 for earlier, later in itertools.pairwise(values))
    assert values[-1] < values[0] - 0.05
    again = fold_in_bpr(q, b, history, reg=0.01, steps=40)
    torch.testing.assert_close(again[0], fold_in_bpr(q, b, history, reg=0.01, steps=40)[0])


def group_items(data: Interactions, group: int) -> list[int]:
    """Indices of the structured data's item group 0 (i0-i19) or 1 (i20-i39)."""
    return [k for k, ext in enumerate(data.item_ids.ids) if int(ext[1:]) // 20 == group]


def top_unseen(scorer: MFScorer, items: list[int], k: int, n_items: int) -> set[int]:
    """Top k of an unknown user folded in from ``items`` (liked), history masked."""
    history = History.from_lists([items], [[5.0] * len(items)], n_items)
    with torch.no_grad():
        scores = scorer.score(scorer.user_state(torch.tensor([-1]), history))[0]
    scores[items] = -torch.inf
    return set(scores.topk(k).indices.tolist())


def test_fold_in_user_ranks_their_group_first(
    fitted: tuple[BPRMF, list[float]], structured
) -> None:
    scorer = fitted[0].to_scorer()
    a, b = group_items(structured.train, 0), group_items(structured.train, 1)
    top_a = top_unseen(scorer, a[:4], 6, len(a) + len(b))
    top_b = top_unseen(scorer, b[:4], 6, len(a) + len(b))
    assert len(top_a & set(a)) >= 5, top_a
    assert len(top_b & set(b)) >= 5, top_b
    assert top_a != top_b  # the same model, different histories: different rankings


def test_low_ratings_do_not_count_in_fold_in(fitted: tuple[BPRMF, list[float]]) -> None:
    scorer = fitted[0].to_scorer()
    liked = History.from_lists([[0, 1]], [[5.0, 5.0]], 40)
    plus_disliked = History.from_lists([[0, 1, 30]], [[5.0, 5.0, 1.0]], 40)
    unknown = torch.tensor([-1])
    torch.testing.assert_close(
        scorer.user_state(unknown, liked), scorer.user_state(unknown, plus_disliked)
    )


def test_empty_history_scores_by_item_bias(fitted: tuple[BPRMF, list[float]]) -> None:
    scorer = fitted[0].to_scorer()
    state = scorer.user_state(torch.tensor([-1]), History.from_lists([[]], [[]], 40))
    torch.testing.assert_close(scorer.score(state)[0], scorer.t["item_bias"])


def test_scorer_tensors_and_unknown_index(fitted: tuple[BPRMF, list[float]]) -> None:
    scorer = fitted[0].to_scorer()
    assert set(scorer.tensors()) == {"user_factors", "item_factors", "item_bias"}
    assert scorer.tensors()["item_factors"].shape == (40, 8)
    assert isinstance(scorer, MFScorer) and not scorer.predicts_ratings
    with pytest.raises(ModelError, match="n_users"):
        scorer.user_state(torch.tensor([10_000]), History.from_lists([[0]], None, 40))


def test_bad_settings_are_refused_with_their_name() -> None:
    with pytest.raises(ModelError, match="dim"):
        BPRConfig(dim=0)
    with pytest.raises(ModelError, match="lr"):
        BPRConfig(lr=0.0)
    with pytest.raises(ModelError, match="fit"):
        BPRMF().to_scorer()
