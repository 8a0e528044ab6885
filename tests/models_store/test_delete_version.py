"""Deleting a version: refused while an alias names it, gone from every rollback
history, removed whole, and its number never given to a later save."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from models_store import ModelStore, NothingToRollBack, StoreError, VersionInUse, VersionNotFound

Saver = Callable[..., str]


def _versions(root: Path, model: str = "mult-vae") -> list[str]:
    return sorted(p.name for p in (root / model / "versions").iterdir() if p.name.isdigit())


def test_deleting_an_old_version_removes_it_whole(
    store: ModelStore, store_root: Path, saved: Saver
) -> None:
    for seed in range(3):
        saved(seed=seed)
    store.promote("mult-vae", "3")
    assert store.delete_version("mult-vae", "1") == []
    assert _versions(store_root) == ["2", "3"]
    assert [m.version for m in store.list_versions("mult-vae")] == ["2", "3"]
    with pytest.raises(VersionNotFound, match="has no version 1"):
        store.load("mult-vae", "1")
    store.load("mult-vae", "2")  # the others are untouched and still verify
    # Nothing is left behind beside the versions (the folder went through a .tmp-* name).
    assert not [p for p in (store_root / "mult-vae").iterdir() if p.name.startswith(".tmp-")]
    with pytest.raises(VersionNotFound, match="has no version 1"):
        store.delete_version("mult-vae", "1")


def test_the_version_an_alias_points_at_is_refused_and_kept(
    store: ModelStore, store_root: Path, saved: Saver
) -> None:
    saved(), saved(seed=1)
    store.promote("mult-vae", "1")
    store.promote("mult-vae", "2", alias="staging")
    before = (store_root / "mult-vae" / "aliases" / "production.json").read_bytes()
    for version, alias in (("1", "production"), ("2", "staging")):
        with pytest.raises(
            VersionInUse, match=rf"version {version} of model 'mult-vae' is what alias {alias}"
        ):
            store.delete_version("mult-vae", version)
    assert _versions(store_root) == ["1", "2"]
    assert (store_root / "mult-vae" / "aliases" / "production.json").read_bytes() == before


def test_a_deleted_version_leaves_every_rollback_history(
    store: ModelStore, store_root: Path, saved: Saver
) -> None:
    for seed in range(3):
        saved(seed=seed)
    for version in ("1", "2", "3"):
        store.promote("mult-vae", version)
    store.promote("mult-vae", "2", alias="staging")
    store.promote("mult-vae", "1", alias="staging")  # staging: 1, then 2
    alias_file = store_root / "mult-vae" / "aliases" / "production.json"
    updated_at = json.loads(alias_file.read_text())["updated_at"]

    assert store.delete_version("mult-vae", "2") == ["production", "staging"]
    assert store.alias_history("mult-vae") == ["3", "1"]
    assert store.alias_history("mult-vae", "staging") == ["1"]
    # Pruning history is not a promotion: servers are not told to load version 3 again.
    assert json.loads(alias_file.read_text())["updated_at"] == updated_at
    assert store.rollback("mult-vae") == "1"
    with pytest.raises(NothingToRollBack):
        store.rollback("mult-vae")


def test_the_next_save_after_deleting_the_newest_version_gets_a_fresh_number(
    store: ModelStore, store_root: Path, saved: Saver
) -> None:
    saved(), saved(seed=1), saved(seed=2)
    store.promote("mult-vae", "1")
    store.delete_version("mult-vae", "3")
    assert saved(seed=3) == "4"
    store.delete_version("mult-vae", "4")
    store.delete_version("mult-vae", "2")
    assert saved(seed=4) == "5"
    assert _versions(store_root) == ["1", "5"]


def test_deleting_the_only_version_leaves_no_model_and_its_number_is_kept(
    store: ModelStore, saved: Saver
) -> None:
    saved()
    store.delete_version("mult-vae", "1")
    assert store.list_models() == []
    assert saved() == "2"


def test_a_newest_version_deleted_by_hand_does_not_give_its_number_again(
    store: ModelStore, store_root: Path, saved: Saver
) -> None:
    saved(), saved(seed=1)
    shutil.rmtree(store_root / "mult-vae" / "versions" / "2")
    assert saved(seed=2) == "3"


def test_a_store_written_before_the_mark_numbers_from_its_newest_folder(
    store: ModelStore, store_root: Path, saved: Saver
) -> None:
    saved(), saved(seed=1)
    (store_root / "mult-vae" / ".last-version").unlink()
    assert saved(seed=2) == "3"
    assert (store_root / "mult-vae" / ".last-version").read_text() == "3\n"


def test_a_mark_that_is_not_a_number_stops_the_save_with_where(
    store: ModelStore, store_root: Path, saved: Saver
) -> None:
    saved()
    (store_root / "mult-vae" / ".last-version").write_text("oops")
    with pytest.raises(
        StoreError, match=r"mult-vae/\.last-version holds 'oops', not a version number"
    ):
        saved(seed=1)
    assert _versions(store_root) == ["1"]
    assert not [p for p in (store_root / "mult-vae").iterdir() if p.name.startswith(".tmp-")]


def test_an_unreadable_alias_file_refuses_the_delete(
    store: ModelStore, store_root: Path, saved: Saver
) -> None:
    """Which version that alias names is unknown: deleting might take production away."""
    saved(), saved(seed=1)
    store.promote("mult-vae", "2")
    (store_root / "mult-vae" / "aliases" / "production.json").write_text("{}")
    with pytest.raises(StoreError, match=r"production\.json is unreadable"):
        store.delete_version("mult-vae", "1")
    assert _versions(store_root) == ["1", "2"]


def test_saves_racing_deletes_of_the_newest_version_never_share_a_number(
    store: ModelStore, saved: Saver
) -> None:
    """A writer that picked its number before the newest version was saved and deleted
    must not rename onto the freed number: picking and deleting share a lock."""
    import threading

    saved()
    numbers: list[str] = []
    stop = threading.Event()

    def save_some(seed: int) -> None:
        for i in range(4):
            numbers.append(saved(seed=seed * 10 + i))

    def delete_newest() -> None:
        while not stop.is_set():
            newest = store.list_versions("mult-vae")[-1].version
            if newest != "1":
                try:
                    store.delete_version("mult-vae", newest)
                except VersionNotFound:  # another delete won; try the next newest
                    continue

    deleter = threading.Thread(target=delete_newest)
    deleter.start()
    writers = [threading.Thread(target=save_some, args=(seed,)) for seed in range(3)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    stop.set()
    deleter.join()
    assert len(numbers) == 12 and len(set(numbers)) == 12
    assert saved(seed=99) == str(max(int(n) for n in numbers) + 1)


def test_picking_a_number_and_deleting_one_hold_the_numbering_lock(
    store: ModelStore, store_root: Path, saved: Saver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race the test above can only hope to hit, checked directly: a save picks its
    number (and renames) only while it holds ``.numbering.lock``, and a delete raises the
    mark and renames the folder away under it too, so neither sees the other half done."""
    import errno
    import fcntl
    import os

    from models_store.backend import LocalDirectoryBackend

    held: list[bool] = []

    def lock_is_held() -> bool:
        fd = os.open(store_root / "mult-vae" / ".numbering.lock", os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            assert exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN)
            return True
        finally:
            os.close(fd)
        return False

    pick = LocalDirectoryBackend._next_version
    raise_mark = LocalDirectoryBackend._raise_last_version

    def checked_pick(versions_dir: Path) -> int:
        held.append(lock_is_held())
        return pick(versions_dir)

    def checked_raise(model_dir: Path, version: int) -> None:
        held.append(lock_is_held())
        raise_mark(model_dir, version)

    saved()
    monkeypatch.setattr(LocalDirectoryBackend, "_next_version", staticmethod(checked_pick))
    monkeypatch.setattr(LocalDirectoryBackend, "_raise_last_version", staticmethod(checked_raise))
    assert saved(seed=1) == "2"
    store.delete_version("mult-vae", "2")
    assert held == [True, True, True]  # the pick, the save's mark, the delete's mark
