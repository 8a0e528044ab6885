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
from models_store import DataInfo, ModelStore, VersionContents
from training.ann import build_for_scorer, build_index, item_table
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


def scorer_with_users(
    *, iid: bool, n_users: int = 120, seed: int = 0
) -> tuple[BPRScorer, dict[str, np.ndarray]]:
    """A BPR-MF scorer of ``N_ITEMS`` items with ``n_users`` trained users, and their
    history (the store's CSR arrays, 10 items each).

    Clustered (30 groups of items around their centres, 16 factors; each user chose 10
    items of one group and points toward them, as a trained user's factors do), or with
    ``iid`` 64 factors of independent values and users toward 10 random items: a
    catalog no index can shortcut (``serve_bench.py --catalog iid``).
    """
    rng = np.random.default_rng(seed)
    if iid:
        groups, group = 1, np.zeros(N_ITEMS, dtype=np.int64)
        items = rng.standard_normal((N_ITEMS, 64))
    else:
        groups, group = 30, rng.integers(0, 30, N_ITEMS)
        centres = rng.standard_normal((groups, DIMS))
        items = centres[group] + 0.5 * rng.standard_normal((N_ITEMS, DIMS))
    seen = [
        np.sort(rng.choice(np.flatnonzero(group == rng.integers(groups)), 10, replace=False))
        for _ in range(n_users)
    ]
    users = np.stack([items[chosen].mean(axis=0) for chosen in seen])
    tensors = {
        "user_factors": torch.as_tensor(users, dtype=torch.float32),
        "item_factors": torch.as_tensor(items, dtype=torch.float32),
        "item_bias": torch.as_tensor(rng.standard_normal(N_ITEMS) * 0.5, dtype=torch.float32),
    }
    scorer = BPRScorer({"n_items": N_ITEMS, "fold_in_reg": 0.1, "fold_in_steps": 1}, tensors)
    history = {
        "indptr": np.arange(0, 10 * n_users + 1, 10, dtype=np.int64),
        "indices": np.concatenate(seen).astype(np.int64),
        "values": np.ones(10 * n_users, dtype=np.float32),
    }
    return scorer, history


def save_with_users(store: ModelStore, *, iid: bool) -> str:
    """``scorer_with_users`` saved as a trained version is (``save_trained``: its indexes
    built with the history, so the retrieval index is calibrated); its version."""
    scorer, history = scorer_with_users(iid=iid)
    n_users = len(history["indptr"]) - 1
    contents = VersionContents(
        tensors={name: t.numpy() for name, t in scorer.tensors().items()},
        user_ids=[f"u{u}" for u in range(n_users)],
        item_ids=[f"i{i}" for i in range(N_ITEMS)],
        history=history,
    )
    data = DataInfo(
        fingerprint="sha256:0",
        cutoff=None,
        source="synthetic",
        n_users=n_users,
        n_items=N_ITEMS,
        n_interactions=len(history["indices"]),
    )
    with store.scratch("bpr-mf") as scratch:
        # The similar-items index at a fixed breadth: these tests are about the other.
        built = build_for_scorer(scorer, scratch, N_ITEMS, history=history, similar_nprobe=16)
        assert built is not None
        return store.save(
            "bpr-mf",
            contents,
            scorer_config=scorer.config,
            hyper_parameters={},
            metrics={},
            data=data,
            retrieval=built[1],
            index_files=built[0],
        ).version
