"""The writer's sync (``CatalogSync.sync_now``) racing a hot swap on the holder's load thread.

A ``PUT``'s answer says ``refresh_pending: false`` when ``sync_now`` returns True: this
server serves the change. The holder runs its load listeners (the catalog's ``apply``
among them) before it installs a new version; a change read between the listener and the
install used to reach only the version served before (V1), and the version installed next
(V2, extended at the older catalog revision) lacked it until the next poll.
"""

from __future__ import annotations

import threading

from sqlalchemy.orm import Session, sessionmaker

from app.catalog.items import save_items
from app.catalog.sync import CatalogSync
from app.repository import NewItem
from models_store import ModelStore
from tests.app.catalog.support import PauseOnce, cpu_holder
from tests.app.catalog_data import TINY_CONVMF, TextRatings
from training.pipeline import train_and_save


def _promote_v2(store: ModelStore, data: TextRatings) -> None:
    tiny = {**TINY_CONVMF, "epochs": 1, "cnn_epochs": 1}
    train_and_save(store, "convmf", data.train, tiny, source="text", promote=True)


def test_a_change_read_while_a_loaded_version_waits_to_be_installed_reaches_it(
    store: ModelStore, data: TextRatings, sessions: sessionmaker[Session]
) -> None:
    """The reviewer's interleaving: the catalog's listener extends V2 at revision r; a PUT
    commits and its ``sync_now`` reads r+1 and extends V1 (all that is installed); then
    V2 is installed. The answer must not say the change is served when it is not."""
    holder = cpu_holder(store)
    assert holder.get("convmf").version == "1"
    sync = CatalogSync(sessions, holder, interval_s=60)
    sync.start()
    pause = PauseOnce()
    holder.add_load_listener(pause)  # after the catalog's listener
    _promote_v2(store, data)
    loader = threading.Thread(target=holder.poll_once, name="test-model-reload")
    loader.start()
    try:
        assert pause.listened.wait(60), "the hot swap never ran its listeners"
        item_id, (_, text) = next(iter(data.held_out.items()))
        save_items(sessions, [NewItem(item_id, None, text, {})])  # the PUT's commit
        answered = sync.sync_now()  # the PUT's own sync, before it answers
    finally:
        pause.go_on.set()
        loader.join(60)
        sync.stop()
    served = holder.get("convmf")
    assert served.version != "1", "the hot swap did not install the new version"
    # The contract: True only when the served version has the change.
    assert answered is False or item_id in served.item_index
    # This server keeps its answer honest by giving the change to V2 before installing it.
    assert answered is True and item_id in served.item_index
    assert served.item_ids[served.item_index[item_id]] == item_id
    assert served.item_index[item_id] in served.from_text


def test_a_change_read_with_no_load_in_flight_is_served_at_once(
    store: ModelStore, data: TextRatings, sessions: sessionmaker[Session]
) -> None:
    """The ordinary path, after a hot swap that finished: True, and the change is served."""
    holder = cpu_holder(store)
    holder.get("convmf")
    sync = CatalogSync(sessions, holder, interval_s=60)
    sync.start()
    try:
        _promote_v2(store, data)
        holder.poll_once()
        swapped = holder.get("convmf")
        assert swapped.version != "1"
        item_id, (_, text) = next(iter(data.held_out.items()))
        save_items(sessions, [NewItem(item_id, None, text, {})])
        assert sync.sync_now() is True
    finally:
        sync.stop()
    served = holder.get("convmf")
    assert served.version == swapped.version and item_id in served.item_index
