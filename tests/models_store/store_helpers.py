"""Builders shared by the store tests (and by the worker processes they spawn)."""

from __future__ import annotations

from typing import Any

import numpy as np

from models_store import DataInfo, VersionContents


def build_contents(seed: int = 0, n_users: int = 5, n_items: int = 7) -> VersionContents:
    """A tiny but realistic version: two tensors, id maps, a CSR history, an extra file."""
    rng = np.random.default_rng(seed)
    dense = rng.random((n_users, n_items)) < 0.4
    rows, cols = np.nonzero(dense)
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(dense.sum(axis=1), out=indptr[1:])
    return VersionContents(
        tensors={
            "item_weight": rng.standard_normal((n_items, 3)).astype(np.float32),
            "item_bias": rng.standard_normal(n_items).astype(np.float32),
            "index_table": np.arange(4, dtype=np.int64),
        },
        user_ids=[f"u{i}" for i in range(n_users)],
        item_ids=[f"item-{i}" for i in range(n_items)],
        history={
            "indptr": indptr,
            "indices": cols.astype(np.int64),
            "values": rng.integers(1, 6, size=rows.shape[0]).astype(np.float32),
        },
        extra={"items.json": b'{"item-0": {"title": "Toy Story (1995)"}}'},
    )


def build_data_info(n_users: int = 5, n_items: int = 7) -> DataInfo:
    return DataInfo(
        fingerprint="sha256:0123abcd",
        cutoff="1998-04-22T23:10:38Z",
        source="ml-100k",
        n_users=n_users,
        n_items=n_items,
        n_interactions=12,
    )


def save_kwargs(**overrides: Any) -> dict[str, Any]:
    """The keyword arguments of ``ModelStore.save`` besides model and contents."""
    kwargs: dict[str, Any] = {
        "scorer_config": {"model": "mult-vae", "n_items": 7, "rating_range": [0.0, 1.0]},
        "hyper_parameters": {"hidden": [600, 200], "dropout": 0.5},
        "metrics": {"ndcg@100": 0.42, "recall@20": 0.39},
        "data": build_data_info(),
        "training": {"seconds": 1.5, "best_epoch": 3},
    }
    kwargs.update(overrides)
    return kwargs
