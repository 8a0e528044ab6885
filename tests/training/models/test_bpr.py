"""BPR-MF: sampling, the BPR step, deterministic fold-in, and accuracy on structured data."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

from training.data.interactions import Interactions
from training.models import REGISTRY
from training.models.base import History, ModelError
from training.models.bpr import BPRMF, BPRConfig
from training.models.common.mf import MFScorer
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
