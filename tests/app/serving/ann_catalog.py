"""A small synthetic indexed catalog for the approximate-retrieval tests.

A BPR-MF item table (3,000 items x 16 factors + bias) of low effective rank,
scored through the real scorer, with the index the store would hold
(``training.ann``), on a stand-in for ``LoadedModel``.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from app.serving.batcher import RankJob
from app.serving.retrieval import AnnRetrieval
from training.ann import build_index, item_table
from training.models.bpr import BPRScorer

N_ITEMS, DIMS, RANK, N_USERS = 3_000, 16, 4, 60
NONE = np.zeros(0, dtype=np.int64)


def catalog_scorer() -> BPRScorer:
    """Item factors of low effective rank (a few strong directions plus noise), as trained
    tables have; independent random values would be a catalog no index can shortcut."""
    rng = np.random.default_rng(0)
    strong = rng.standard_normal((N_ITEMS, RANK)) @ rng.standard_normal((RANK, DIMS))
    factors = strong + 0.3 * rng.standard_normal((N_ITEMS, DIMS))
    tensors = {
        "user_factors": torch.zeros(1, DIMS),
        "item_factors": torch.as_tensor(factors, dtype=torch.float32),
        "item_bias": torch.as_tensor(rng.standard_normal(N_ITEMS, dtype=np.float32) * 0.5),
    }
    return BPRScorer({"n_items": N_ITEMS, "fold_in_reg": 0.1, "fold_in_steps": 1}, tensors)


def indexed_model(
    candidates: int = 200, max_candidates: int = 10_000, nprobe: int | None = None
) -> SimpleNamespace:
    scorer = catalog_scorer()
    index, params = build_index(item_table(scorer), nprobe=nprobe)
    return SimpleNamespace(
        name="bpr-mf",
        version="1",
        device=torch.device("cpu"),
        n_items=N_ITEMS,
        popularity=np.arange(N_ITEMS, dtype=np.float32),
        scorer=scorer,
        from_text={},
        ann=AnnRetrieval(index, params, candidates, max_candidates),
    )


def user_states(n: int = N_USERS, seed: int = 1) -> list[torch.Tensor]:
    rng = np.random.default_rng(seed)
    return [torch.as_tensor(rng.standard_normal((1, DIMS), dtype=np.float32)) for _ in range(n)]


def job(
    state: torch.Tensor | None, k: int = 100, banned: Any = NONE, allowed: Any = None
) -> RankJob:
    return RankJob(state=state, banned=np.asarray(banned, dtype=np.int64), allowed=allowed, k=k)
