"""Fixtures for the retraining tests: a base data file, a store with production, a job context."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sqlalchemy.orm import Session, sessionmaker

from app.core.db import session_scope
from app.repository import NewInteraction, add_interactions
from app.retrain.runner import JobContext
from models_store import ModelStore
from tests.app.conftest import JobContextFactory, tiny_interactions
from tests.conftest import age_log
from training.data.files import read_interaction_file
from training.data.interactions import Interactions
from training.pipeline import train_and_save

#: A mult-vae that learns the tiny data's two taste groups (ndcg@10 ~0.33) ...
GOOD_VAE = {"epochs": 5, "hidden_dim": 16, "latent_dim": 8, "lr": 3e-2, "batch_size": 10}
#: ... and one that barely moves from its random start (ndcg@10 ~0.09).
BAD_VAE = {"epochs": 1, "hidden_dim": 16, "latent_dim": 8, "lr": 1e-6}


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture
def base_csv(tmp_path: Path) -> Path:
    """The tiny synthetic ratings as a CSV file: a base data set a job can reload by path."""
    data = tiny_interactions()
    path = tmp_path / "base.csv"
    pd.DataFrame(
        {
            "user_id": np.asarray(data.user_ids.ids, dtype=object)[data.users],
            "item_id": np.asarray(data.item_ids.ids, dtype=object)[data.items],
            "rating": data.ratings,
            "timestamp": data.timestamps,
        }
    ).to_csv(path, index=False)
    return path


@pytest.fixture
def base_data(base_csv: Path) -> Interactions:
    return read_interaction_file(base_csv)


@pytest.fixture
def job_store(tmp_path: Path) -> ModelStore:
    return ModelStore(tmp_path / "store")


@pytest.fixture
def promote_base(
    job_store: ModelStore, base_data: Interactions, base_csv: Path
) -> Callable[..., str]:
    """``promote_base(model, **params)`` -> production version trained on the base CSV."""

    def train(model: str, **params: object) -> str:
        manifest = train_and_save(
            job_store, model, base_data, dict(params), source=str(base_csv), promote=True
        )
        return manifest.version

    return train


@pytest.fixture
def job_context(
    make_job_context: JobContextFactory, sqlite_url: str, sessions: sessionmaker[Session]
) -> JobContext:
    """Worker context over the migrated SQLite log and the test's store (5 s leases)."""
    return make_job_context(sqlite_url, sessions, job_lease_s=5.0)


@pytest.fixture
def log_new_users(sqlite_url: str, sessions: sessionmaker[Session]) -> Callable[..., list[str]]:
    """``log_new_users(n)`` logs 10 ratings of even items for each of n new users, dated
    before a job's read's commit margin (``age_log``) so that the job trains on them."""

    def log(n: int = 4, prefix: str = "new") -> list[str]:
        users = [f"{prefix}{u}" for u in range(n)]
        rows = [NewInteraction(u, str(i), 5.0) for u in users for i in range(0, 20, 2)]
        with session_scope(sessions) as session:
            add_interactions(session, rows)
        age_log(sqlite_url)
        return users

    return log
