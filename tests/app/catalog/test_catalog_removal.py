"""Removing catalog items (``app.catalog.removal``): the write, its epoch, and every
server picking it up at its poll; on SQLite and on the real Postgres."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from sqlalchemy.orm import Session, sessionmaker

from app.catalog import UnknownItems, remove_items, restore_items, save_items
from app.catalog.sync import CatalogSync
from app.core.db import session_scope
from app.repository import NewItem, catalog_epoch, get_item
from app.serving.removed import RemovedItems
from models_store import ModelStore
from tests.app.catalog.support import cpu_holder


def _item(item_id: str, **attributes: Any) -> NewItem:
    return NewItem(item_id, None, None, attributes)


def _epoch(sessions: sessionmaker[Session]) -> int:
    with session_scope(sessions) as session:
        return catalog_epoch(session)


def _sync(sessions: sessionmaker[Session], tmp_path: Path) -> CatalogSync:
    """Another server's sync (no model loaded), read up to now, small pages."""
    sync = CatalogSync(
        sessions, cpu_holder(ModelStore(tmp_path / "empty")), interval_s=60, page_size=2
    )
    sync.refresh()
    return sync


def test_removal_stamps_one_epoch_and_is_idempotent(
    both_sessions: sessionmaker[Session],
) -> None:
    sessions = both_sessions
    save_items(sessions, [_item(i, shelf=1) for i in ("a", "b", "c")])
    before = _epoch(sessions)
    assert remove_items(sessions, ["a", "b", "a"]) == {"a": "removed", "b": "removed"}
    assert _epoch(sessions) == before + 1  # one transaction, one epoch
    with session_scope(sessions) as session:
        removed = get_item(session, "a")
        assert removed is not None and removed.removed_at is not None
        assert removed.change_epoch == before + 1 and removed.attributes == {"shelf": 1}
    assert remove_items(sessions, ["a", "c"]) == {"a": "already_removed", "c": "removed"}
    with session_scope(sessions) as session:
        again = get_item(session, "a")
        assert again is not None and again.removed_at == removed.removed_at  # the first time
    assert remove_items(sessions, ["a"]) == {"a": "already_removed"}
    assert _epoch(sessions) == before + 2  # nothing changed: no epoch taken


def test_an_unknown_id_removes_nothing(both_sessions: sessionmaker[Session]) -> None:
    sessions = both_sessions
    save_items(sessions, [_item("a")])
    before = _epoch(sessions)
    with pytest.raises(UnknownItems) as raised:
        remove_items(sessions, ["a", "typo", "other"])
    assert raised.value.ids == ["typo", "other"]
    assert str(raised.value).startswith("not in the catalog: 'typo', 'other'; nothing was removed")
    with session_scope(sessions) as session:
        kept = get_item(session, "a")
        assert kept is not None and kept.removed_at is None
    assert _epoch(sessions) == before


def test_removal_from_an_unreachable_database_is_one_line_without_the_password() -> None:
    """SQLAlchemy's message adds the driver's hint and a link on lines of their own."""
    from app.catalog import CatalogError
    from app.catalog.removal import remove_from_database

    url = "postgresql+psycopg://genrec:s3cret@127.0.0.1:1/genrec"
    with pytest.raises(CatalogError, match="cannot write the catalog at") as err:
        remove_from_database(url, ["i1"], migrate=False)
    assert "s3cret" not in str(err.value) and "\n" not in str(err.value)
    assert "127.0.0.1:1/genrec: " in str(err.value)


def test_put_restores_a_removed_item_whatever_its_content(
    both_sessions: sessionmaker[Session],
) -> None:
    sessions = both_sessions
    save_items(sessions, [_item("a", shelf=1)])
    remove_items(sessions, ["a"])
    before = _epoch(sessions)
    # The same content as stored would be "unchanged" for a live item: here it restores.
    assert save_items(sessions, [_item("a", shelf=1)]) == {"a": "restored"}
    assert _epoch(sessions) == before + 1
    with session_scope(sessions) as session:
        restored = get_item(session, "a")
        assert restored is not None and restored.removed_at is None
    assert save_items(sessions, [_item("a", shelf=1)]) == {"a": "unchanged"}


def test_restore_undoes_the_removal_only_and_stamps_one_epoch(
    both_sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """The dashboard's Restore: the row's content as it is when the statement runs (what
    another writer put meanwhile, never an earlier read of it), only for removed items."""
    sessions = both_sessions
    save_items(sessions, [_item(i, shelf=1) for i in ("a", "b", "c")])
    remove_items(sessions, ["a", "b"])
    there = _sync(sessions, tmp_path)
    before = _epoch(sessions)
    outcome = restore_items(sessions, ["a", "c", "typo", "a"])
    assert outcome == {"a": "restored", "c": "not_removed", "typo": "unknown"}
    assert _epoch(sessions) == before + 1
    with session_scope(sessions) as session:
        restored = get_item(session, "a")
        assert restored is not None and restored.removed_at is None
        assert restored.attributes == {"shelf": 1} and restored.change_epoch == before + 1
    assert restore_items(sessions, ["a"]) == {"a": "not_removed"}
    assert _epoch(sessions) == before + 1  # nothing changed: no epoch taken
    there.refresh()  # another server's poll sees it
    assert there.removed.ids == {"b"}


def test_another_server_picks_a_removal_and_a_restore_up_at_its_poll(
    both_sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    sessions = both_sessions
    save_items(sessions, [_item(f"i{n}", shelf=n) for n in range(5)])
    there = _sync(sessions, tmp_path)
    assert there.removed.ids == frozenset()
    remove_items(sessions, ["i1", "i3", "i4"])  # written by another process
    assert there.removed.ids == frozenset()  # not polled yet
    there.refresh()  # what its poll thread does every interval (pages of 2 here)
    assert there.removed.ids == {"i1", "i3", "i4"}
    # A removed item keeps its attributes: business rules still resolve names and kinds.
    assert dict(there.attributes.snapshot().items["i3"]) == {"shelf": 3}
    revision = there.removed.revision
    there.refresh()
    assert there.removed.revision == revision  # nothing new: the index arrays stay
    save_items(sessions, [_item("i3", shelf=3)])
    there.refresh()
    assert there.removed.ids == {"i1", "i4"}
    # A server started after the removal reads it with the whole table.
    assert _sync(sessions, tmp_path).removed.ids == {"i1", "i4"}


def _model(name: str, revision: str, ids: list[str]) -> Any:
    """What ``RemovedItems.indices`` reads of a loaded model."""
    return SimpleNamespace(
        name=name, revision=revision, n_items=len(ids), item_index={i: n for n, i in enumerate(ids)}
    )


def test_the_mask_is_built_once_per_model_and_removal_revision() -> None:
    removed = RemovedItems()
    model = _model("m", "1", ["a", "b", "c", "d"])
    assert removed.mask(model) is None
    assert removed.update([("c", True), ("a", True), ("zz", True), ("b", False)]) == 3
    first = removed.mask(model)
    assert first is not None
    assert first.indices.tolist() == [0, 2]  # sorted; an id the model lacks is skipped
    assert first.row.tolist() == [True, False, True, False]
    assert removed.mask(model) is first  # shared by every request until a change
    assert not first.indices.flags.writeable and not first.row.flags.writeable
    grown = removed.mask(_model("m", "1+c1", ["a", "b", "c", "d", "zz"]))
    assert grown is not None and grown.indices.tolist() == [0, 2, 4]
    assert removed.update([("a", True)]) == 0 and removed.mask(model) is first
    assert removed.update([("a", False)]) == 1
    again = removed.mask(model)
    assert again is not None and np.array_equal(again.indices, [2])
    assert removed.mask(_model("m", "1", ["x"])) is None  # knows none of them
