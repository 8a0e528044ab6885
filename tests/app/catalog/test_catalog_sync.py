"""Keeping loaded models in step with the items table (``app.catalog.sync``), cold start.

The tiny ConvMF of ``conftest.py`` never saw the held-out items; they enter
only through the catalog, as items added after training do.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import torch
from sqlalchemy.orm import Session, sessionmaker

from app.catalog.items import save_items
from app.catalog.sync import CatalogSync
from app.core.db import make_engine, make_sessionmaker, session_scope
from app.repository import NewItem, upsert_items
from models_store import ModelStore
from tests.app.catalog.support import cpu_holder
from tests.app.catalog_data import TINY_CONVMF, TextRatings
from training import metrics as M
from training.models.base import History
from training.pipeline import train_and_save

# --------------------------------------------------------------------------- acceptance: cold start


def test_held_out_items_added_through_the_catalog_beat_the_global_mean(
    store: ModelStore, data: TextRatings, sessions: sessionmaker[Session]
) -> None:
    """Issue 5 acceptance (offline): items never trained on, placed from their text alone."""
    holder = cpu_holder(store)
    holder.get("convmf")
    sync = CatalogSync(sessions, holder, interval_s=60)
    sync.start()
    try:
        save_items(sessions, [NewItem(i, None, text, {}) for i, (_, text) in data.held_out.items()])
        sync.sync_now()
        model = holder.get("convmf")
    finally:
        sync.stop()
    users = [model.user_index[u] for u, _, _ in data.held_out_ratings]
    items = torch.tensor([model.item_index[i] for _, i, _ in data.held_out_ratings])
    truth = np.array([r for _, _, r in data.held_out_ratings])
    assert all(int(i) in model.from_text for i in items)
    with torch.inference_mode():
        state = model.scorer.user_state(
            torch.tensor(users), History.from_csr(model.history, np.array(users))
        )
        predicted = model.scorer.predict(state)[torch.arange(len(users)), items].numpy()
    global_mean = float(data.train.ratings.mean())
    from_text, fallback = M.rmse(predicted, truth), M.rmse(np.full(len(truth), global_mean), truth)
    print(f"cold-item RMSE from text {from_text:.4f}, global mean {fallback:.4f}")
    assert from_text < 0.9 * fallback, (from_text, fallback)


# --------------------------------------------------------------------------- sync


def test_a_new_production_version_gets_the_catalog_on_load(
    store: ModelStore, data: TextRatings, sessions: sessionmaker[Session]
) -> None:
    holder = cpu_holder(store)
    sync = CatalogSync(sessions, holder, interval_s=60)
    save_items(sessions, [NewItem(i, None, t, {}) for i, (_, t) in data.held_out.items()])
    sync.start()
    try:
        first = holder.get("convmf")
        assert len(first.from_text) == len(data.held_out)
        tiny = {**TINY_CONVMF, "epochs": 1, "cnn_epochs": 1}
        train_and_save(store, "convmf", data.train, tiny, source="text", promote=True)
        holder.poll_once()  # the hot swap
        second = holder.get("convmf")
    finally:
        sync.stop()
    assert second.version != first.version
    assert {second.item_ids[i] for i in second.from_text} == set(data.held_out)


def test_a_server_sees_items_added_through_another_process(
    store: ModelStore, data: TextRatings, sessions: sessionmaker[Session]
) -> None:
    here, there = cpu_holder(store), cpu_holder(store)
    here.get("convmf"), there.get("convmf")
    sync_here = CatalogSync(sessions, here, interval_s=60)
    sync_there = CatalogSync(sessions, there, interval_s=60)
    sync_here.start(), sync_there.start()
    try:
        item_id, (_, text) = next(iter(data.held_out.items()))
        save_items(sessions, [NewItem(item_id, "t", text, {})])
        sync_here.sync_now()
        assert item_id not in there.get("convmf").item_index  # not polled yet
        sync_there.sync_now()  # what its poll thread does every interval
        assert item_id in there.get("convmf").item_index

        # A transaction that commits late carries an updated_at older than rows already
        # read: the look-back window still picks it up.
        late_id, (_, late_text) = list(data.held_out.items())[1]
        with session_scope(sessions) as session:
            upsert_items(
                session,
                [NewItem(late_id, None, late_text, {})],
                datetime.now(UTC) - timedelta(seconds=5),
            )
        sync_there.sync_now()
        assert late_id in there.get("convmf").item_index
    finally:
        sync_here.stop(), sync_there.stop()


def test_a_broken_catalog_read_keeps_serving(store: ModelStore, tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/no-tables.db")  # never migrated
    holder = cpu_holder(store)
    model = holder.get("convmf")
    sync = CatalogSync(make_sessionmaker(engine), holder, interval_s=60)
    sync.start()
    sync.stop()
    assert holder.get("convmf") is model
    engine.dispose()
