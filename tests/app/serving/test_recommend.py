"""Masking before top-k: hand-computed cases over all items and over candidates."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch

from app.serving.recommend import top_k_items

MODEL = SimpleNamespace(
    item_ids=["a", "b", "c", "d", "e"], titles=[None, "B", None, None, None], from_text={}
)
SCORES = torch.tensor([0.5, 0.9, 0.1, 0.7, 0.3])


def _ids(items) -> list[str]:  # type: ignore[no-untyped-def]
    return [it.item_id for it in items]


def test_masked_items_never_appear_and_k_is_filled_from_the_rest() -> None:
    banned = np.array([1, 3])  # b and d: the two best
    assert _ids(top_k_items(MODEL, SCORES, None, banned, 2)) == ["a", "e"]
    top = top_k_items(MODEL, SCORES, None, np.array([], dtype=np.int64), 2)
    assert _ids(top) == ["b", "d"] and top[0].title == "B"
    assert abs(top[0].score - 0.9) < 1e-6


def test_k_larger_than_what_is_left_returns_only_unmasked() -> None:
    assert _ids(top_k_items(MODEL, SCORES, None, np.array([0, 1, 2, 3]), 10)) == ["e"]
    assert top_k_items(MODEL, SCORES, None, np.arange(5), 3) == []


def test_candidates_are_ranked_among_themselves_with_the_mask() -> None:
    candidates = torch.tensor([0, 2, 3])
    subset = SCORES[candidates]  # what score(state, candidates) returns: (C,)
    assert _ids(top_k_items(MODEL, subset, candidates, np.array([3]), 5)) == ["a", "c"]
