"""Catalog changes reach pinned versions (an experiment variant that names a version).

The holder serves production versions and, besides them, the versions experiment
variants pin (``ModelHolder.get_version``). The catalog's copy-on-write updates used to
cover production versions only: a pinned text-aware version got the catalog once, at its
load, and never an item put after that, while ``sync_now`` (a ``PUT``'s answer) said the
change was served. One arm of an experiment could recommend a new item, the other not.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
import pytest
import torch
from sqlalchemy.orm import Session, sessionmaker

import app.catalog.sync as sync_module
from app.catalog.extension import TextItem
from app.catalog.items import save_items
from app.catalog.removal import remove_items
from app.catalog.sync import CatalogSync
from app.repository import NewItem
from app.serving.holder import ModelHolder
from app.serving.loaded import LoadedModel
from models_store import ModelStore
from tests.app.catalog.support import PauseOnce, cpu_holder
from tests.app.catalog_data import TINY_CONVMF, TextRatings
from training.models.base import History
from training.pipeline import train_and_save


def _store_v2(store: ModelStore, data: TextRatings) -> None:
    """convmf version 2, stored but not promoted: only a variant that names it serves it."""
    tiny = {**TINY_CONVMF, "epochs": 1, "cnn_epochs": 1}
    assert train_and_save(store, "convmf", data.train, tiny, source="text").version == "2"


def _score(model: LoadedModel, user_id: str, item_id: str) -> float:
    """The model's predicted rating of ``item_id`` for training user ``user_id``."""
    user = model.user_index[user_id]
    with torch.inference_mode():
        state = model.scorer.user_state(
            torch.tensor([user]), History.from_csr(model.history, np.array([user]))
        )
        return float(model.scorer.predict(state)[0, model.item_index[item_id]])


def _pinned_and_syncing(
    store: ModelStore, data: TextRatings, sessions: sessionmaker[Session]
) -> tuple[ModelHolder, CatalogSync, LoadedModel]:
    """Production convmf 1, a started sync, and convmf 2 pinned before any catalog item."""
    _store_v2(store, data)
    holder = cpu_holder(store)
    assert holder.get("convmf").version == "1"
    sync = CatalogSync(sessions, holder, interval_s=60)
    sync.start()
    pinned = holder.get_version("convmf", "2")
    assert pinned.version == "2" and holder.peek("convmf") is not pinned
    return holder, sync, pinned


def test_an_item_put_after_a_version_was_pinned_reaches_the_pinned_version(
    store: ModelStore, data: TextRatings, sessions: sessionmaker[Session]
) -> None:
    holder, sync, before = _pinned_and_syncing(store, data, sessions)
    try:
        item_id, (_, text) = next(iter(data.held_out.items()))
        save_items(sessions, [NewItem(item_id, "A new title", text, {})])  # a PUT's commit
        assert sync.sync_now() is True  # the PUT's own sync: refresh_pending false
        pinned = holder.get_version("convmf", "2")
        production = holder.get("convmf")
    finally:
        sync.stop()
    assert pinned.version == "2" and item_id in pinned.item_index
    assert pinned.item_index[item_id] in pinned.from_text
    assert np.isfinite(_score(pinned, "u00", item_id))
    assert item_id not in before.item_index  # copy-on-write: requests holding it finish on it
    assert production.version == "1" and item_id in production.item_index
    # Titles and removals are shared per server, looked up per request: the same for both.
    assert sync.titles.get(item_id, None) == "A new title"
    remove_items(sessions, [item_id])
    assert sync.sync_now() is True
    mask = sync.removed.mask(holder.get_version("convmf", "2"))
    assert mask is not None and bool(mask.row[pinned.item_index[item_id]])


def test_the_sync_says_so_when_scoring_for_a_pinned_version_fails(
    store: ModelStore,
    data: TextRatings,
    sessions: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Production is extended, the pinned version's scoring fails: ``sync_now`` must not
    say the change is served (``refresh_pending``); the next poll extends it."""
    holder, sync, _ = _pinned_and_syncing(store, data, sessions)
    real: Callable[..., LoadedModel] = sync_module.extend_model

    def failing_for_v2(model: LoadedModel, items: list[TextItem]) -> LoadedModel:
        if model.version == "2":
            raise RuntimeError("scoring failed")
        return real(model, items)

    item_id, (_, text) = next(iter(data.held_out.items()))
    try:
        monkeypatch.setattr(sync_module, "extend_model", failing_for_v2)
        save_items(sessions, [NewItem(item_id, None, text, {})])
        assert sync.sync_now() is False
        assert item_id in holder.get("convmf").item_index
        assert item_id not in holder.get_version("convmf", "2").item_index
        monkeypatch.setattr(sync_module, "extend_model", real)
        assert sync.sync_now() is True  # the next poll
    finally:
        sync.stop()
    assert item_id in holder.get_version("convmf", "2").item_index


def test_a_change_read_while_a_pinned_version_waits_to_be_installed_reaches_it(
    store: ModelStore, data: TextRatings, sessions: sessionmaker[Session]
) -> None:
    """The hot-swap race, for a pin: the catalog's listener extends version 2 at revision
    r, a PUT's sync reads r+1 and extends what is served, then version 2 is pinned. Its
    install must see that it is stale, as a production install does."""
    _store_v2(store, data)
    holder = cpu_holder(store)
    holder.get("convmf")
    sync = CatalogSync(sessions, holder, interval_s=60)
    sync.start()
    pause = PauseOnce()
    holder.add_load_listener(pause)  # after the catalog's listener
    pinning = threading.Thread(target=holder.get_version, args=("convmf", "2"), name="test-pin")
    pinning.start()
    try:
        assert pause.listened.wait(60), "the pin never ran its listeners"
        item_id, (_, text) = next(iter(data.held_out.items()))
        save_items(sessions, [NewItem(item_id, None, text, {})])
        answered = sync.sync_now()
    finally:
        pause.go_on.set()
        pinning.join(60)
        sync.stop()
    pinned = holder.get_version("convmf", "2")
    assert answered is True and item_id in pinned.item_index
    assert pinned.item_index[item_id] in pinned.from_text
