"""A scored row (an item's similar-items row, which no scorer makes) ranked as every list
is: ``rank_scored`` masks before top-k, ``scored_items`` names the items. Hand-computed."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch

from app.serving.batcher import RankJob, rank_scored
from app.serving.recommend import scored_items

MODEL = SimpleNamespace(
    item_ids=["a", "b", "c", "d", "e"],
    titles=[None, "B", None, None, None],
    from_text={4},
    n_items=5,
    device=torch.device("cpu"),
)
ROW = torch.tensor([[0.5, 0.9, 0.1, 0.7, 0.3]])  # (1, I), as similar_scores(...).unsqueeze(0)


def _top(banned: list[int], k: int) -> list[dict[str, object]]:
    job = RankJob(None, np.array(banned, dtype=np.int64), None, k)
    return scored_items(MODEL, rank_scored(MODEL, [job], ROW)[0])  # type: ignore[arg-type]


def test_masked_items_never_appear_and_k_is_filled_from_the_rest() -> None:
    assert [it["item_id"] for it in _top([1, 3], 2)] == ["a", "e"]  # b and d: the two best
    top = _top([], 2)
    assert [it["item_id"] for it in top] == ["b", "d"] and top[0]["title"] == "B"
    assert abs(float(top[0]["score"]) - 0.9) < 1e-6  # type: ignore[arg-type]


def test_k_larger_than_what_is_left_returns_only_unmasked() -> None:
    only = _top([0, 1, 2, 3], 10)
    assert [it["item_id"] for it in only] == ["e"] and only[0]["from_text"] is True
    assert _top([0, 1, 2, 3, 4], 3) == []


def test_a_half_precision_row_is_ranked_in_float32() -> None:
    """A similar row may come in the table's dtype; the ranking's scores are float32."""
    job = RankJob(None, np.zeros(0, dtype=np.int64), None, 2)
    ranked = rank_scored(MODEL, [job], ROW.half())[0]  # type: ignore[arg-type]
    assert ranked.items.tolist() == [1, 3] and ranked.scores.dtype == np.float32
