"""Keeping loaded models in step with the items table (``app.catalog.sync``), cold start.

The tiny ConvMF of ``conftest.py`` never saw the held-out items; they enter
only through the catalog, as items added after training do.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import torch
from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from app.catalog.items import save_items
from app.catalog.sync import CatalogSync
from app.core.db import make_engine, make_sessionmaker, session_scope
from app.db_models import Item
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


def test_the_catalog_keeps_the_served_models_own_strings_of_ids_and_equal_titles(
    store: ModelStore, sessions: sessionmaker[Session]
) -> None:
    """A row's id and title are new strings; where the loaded model holds equal ones the
    catalog's structures keep the model's (one copy per item at 1M items, not two)."""
    holder = cpu_holder(store)
    model = holder.get("convmf")
    same, renamed = model.item_ids[0], model.item_ids[1]
    save_items(
        sessions,
        [
            NewItem(same, model.titles[0], None, {"shelf": 1}),
            NewItem(renamed, "a new name", None, {"shelf": 2}),
        ],
    )
    sync = CatalogSync(sessions, holder, interval_s=60)
    sync.refresh()
    shown = sync.titles.get(same, None)
    assert shown == model.titles[0] and shown is model.titles[0]
    assert sync.titles.get(renamed, None) == "a new name"
    kept = {item_id: item_id for item_id in sync.attributes.snapshot().items}
    assert kept[same] is model.item_ids[0] and kept[renamed] is model.item_ids[1]
    assert _served(sync) == {same: {"shelf": 1}, renamed: {"shelf": 2}}


# --------------------------------------------------------------------------- commit order


def _attribute_sync(sessions: sessionmaker[Session], tmp_path: Path) -> CatalogSync:
    """A server's sync with no model loaded: what its business rules filter on."""
    holder = cpu_holder(ModelStore(tmp_path / "empty-store"))
    sync = CatalogSync(sessions, holder, interval_s=60, page_size=3)
    sync.refresh()
    return sync


def _served(sync: CatalogSync) -> dict[str, dict[str, object]]:
    return {k: dict(v) for k, v in sync.attributes.snapshot().items.items()}


def test_a_long_transaction_that_commits_after_a_later_one_is_seen(
    pg_sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """The import whose transaction stays open while a PUT of another item commits: its
    rows carry a stamp older than the PUT's, and every server used to pass over them."""
    sessions = pg_sessions
    save_items(sessions, [NewItem("a", None, None, {"batch": "old"})])
    sync = _attribute_sync(sessions, tmp_path)
    assert _served(sync) == {"a": {"batch": "old"}}

    written, go_on = threading.Event(), threading.Event()

    def hold(*_: object) -> None:  # the import's rows are written, its transaction stays open
        written.set()
        go_on.wait(30)

    def long_import() -> None:
        with session_scope(sessions) as session:
            event.listen(session, "after_flush", hold, once=True)
            stamp = datetime.now(UTC) - timedelta(seconds=60)  # taken when the import began
            upsert_items(session, [NewItem("a", None, None, {"batch": "new"})], stamp)

    importer = threading.Thread(target=long_import)
    importer.start()
    try:
        assert written.wait(30)
        save_items(sessions, [NewItem("b", None, None, {"batch": "put"})])  # commits first
        sync.refresh()
        assert _served(sync) == {"a": {"batch": "old"}, "b": {"batch": "put"}}
    finally:
        go_on.set()
        importer.join(30)
    sync.refresh()
    assert _served(sync) == {"a": {"batch": "new"}, "b": {"batch": "put"}}


def test_a_writer_whose_clock_is_behind_is_seen(
    both_sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """Writers' clocks minutes apart (or a change written after its stamp was taken)."""
    sessions = both_sessions
    sync = _attribute_sync(sessions, tmp_path)
    save_items(sessions, [NewItem("b", None, None, {"grade": 1})])
    sync.refresh()
    with session_scope(sessions) as session:  # a replica whose clock is 5 minutes behind
        behind = datetime.now(UTC) - timedelta(minutes=5)
        upsert_items(
            session, [NewItem(f"late{n}", None, None, {"grade": n}) for n in range(7)], behind
        )
    sync.refresh()
    assert _served(sync) == {"b": {"grade": 1}, **{f"late{n}": {"grade": n} for n in range(7)}}
    # An unchanged row keeps its epoch: the next poll changes nothing.
    revision = sync.attributes.revision
    assert save_items(sessions, [NewItem("b", None, None, {"grade": 1})]) == {"b": "unchanged"}
    assert sync.refresh() == 0 and sync.attributes.revision == revision


def test_concurrent_writers_and_a_polling_server_end_in_the_database_state(
    pg_sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """Many writers (one-item PUTs, multi-item imports, overlapping ids) commit in any
    order while a server polls; once they are done, one poll gives it what the table holds."""
    sessions = pg_sessions
    # Every id exists first: writers then only update, in primary-key order (no deadlock).
    save_items(sessions, [NewItem(f"i{k}", None, None, {"w": -1}) for k in range(20)])
    sync = _attribute_sync(sessions, tmp_path)
    stop = threading.Event()
    failures: list[BaseException] = []

    def write(n: int) -> None:
        try:
            for round_ in range(15):
                ids = [f"i{(n * 7 + round_ * 3 + k) % 20}" for k in range(1 + n % 4)]
                value = {"w": n * 100 + round_}
                with session_scope(sessions) as session:
                    stamp = datetime.now(UTC) - timedelta(seconds=(n * 13 + round_) % 40)
                    upsert_items(session, [NewItem(i, None, None, value) for i in ids], stamp)
                    time.sleep(0.002 * (n % 3))  # the commit lags the epoch a little
        except BaseException as exc:
            failures.append(exc)

    def poll() -> None:
        while not stop.is_set():
            sync.refresh()

    poller = threading.Thread(target=poll)
    writers = [threading.Thread(target=write, args=(n,)) for n in range(6)]
    poller.start()
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join(60)
    stop.set()
    poller.join(30)
    assert not failures, failures
    sync.refresh()
    with session_scope(sessions) as session:
        stored = dict(session.execute(select(Item.item_id, Item.attributes)).all())
    assert _served(sync) == stored
