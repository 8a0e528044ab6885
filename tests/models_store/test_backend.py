"""Atomic publish and alias moves under crashes and concurrency (threads and processes)."""

from __future__ import annotations

import errno
import multiprocessing
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from store_helpers import build_contents, save_kwargs

from models_store import LocalDirectoryBackend, ModelStore, NothingToRollBack
from models_store import backend as backend_module

Saver = Callable[..., str]
MODEL = "mult-vae"


def _visible_state(root: Path) -> tuple[list[str], list[str]]:
    """(published versions, leftover temp entries anywhere under the model dir)."""
    model_dir = root / MODEL
    versions = sorted((p.name for p in (model_dir / "versions").iterdir()), key=int)
    leftovers = sorted(str(p.relative_to(model_dir)) for p in model_dir.rglob(".tmp-*"))
    return versions, leftovers


# --------------------------------------------------------------------------- crashes


@pytest.mark.parametrize("fail_on_write", [1, 3, 5])  # a data file, a later file, the manifest
def test_crash_mid_save_leaves_nothing_visible(
    store: ModelStore,
    store_root: Path,
    saved: Saver,
    monkeypatch: pytest.MonkeyPatch,
    fail_on_write: int,
) -> None:
    saved()
    store.promote(MODEL, "1")
    real_write = backend_module._write_durably
    calls = {"n": 0}

    def flaky_write(path: Path, data: bytes) -> None:
        calls["n"] += 1
        if calls["n"] == fail_on_write:
            raise OSError(errno.ENOSPC, "No space left on device (simulated)")
        real_write(path, data)

    monkeypatch.setattr(backend_module, "_write_durably", flaky_write)
    with pytest.raises(OSError, match="simulated"):
        store.save(MODEL, build_contents(seed=9), **save_kwargs())

    assert _visible_state(store_root) == (["1"], [])
    assert store.alias_state(MODEL) == "1"
    assert store.load(MODEL, "1").manifest.version == "1"
    monkeypatch.undo()
    assert store.save(MODEL, build_contents(seed=9), **save_kwargs()).version == "2"


def test_interrupt_during_rename_cleans_up(
    store: ModelStore, store_root: Path, saved: Saver, monkeypatch: pytest.MonkeyPatch
) -> None:
    saved()

    def interrupted_rename(src: object, dst: object) -> None:
        raise KeyboardInterrupt  # not an Exception: cleanup must still run

    monkeypatch.setattr(backend_module.os, "rename", interrupted_rename)
    with pytest.raises(KeyboardInterrupt):
        store.save(MODEL, build_contents(seed=1), **save_kwargs())
    assert _visible_state(store_root) == (["1"], [])


def test_failed_alias_write_leaves_alias_unchanged(
    store: ModelStore, store_root: Path, saved: Saver, monkeypatch: pytest.MonkeyPatch
) -> None:
    saved(), saved()
    store.promote(MODEL, "1")

    def broken_replace(src: object, dst: object) -> None:
        raise OSError(errno.EIO, "I/O error (simulated)")

    monkeypatch.setattr(backend_module.os, "replace", broken_replace)
    with pytest.raises(OSError, match="simulated"):
        store.promote(MODEL, "2")
    monkeypatch.undo()
    assert store.alias_state(MODEL) == "1"
    assert _visible_state(store_root)[1] == []


def test_a_writer_that_lost_the_race_takes_the_next_number(
    store: ModelStore, store_root: Path, saved: Saver, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = saved(seed=0)
    original = store.load(MODEL, first).contents
    answers = iter([1, 1, 2])  # stale twice, as if other writers kept winning

    monkeypatch.setattr(
        LocalDirectoryBackend, "_next_version", staticmethod(lambda _dir: next(answers))
    )
    assert store.save(MODEL, build_contents(seed=5), **save_kwargs()).version == "2"
    monkeypatch.undo()

    assert store.load(MODEL, "1").contents.user_ids == original.user_ids
    assert store.load(MODEL, "1").manifest.version == "1"  # never overwritten
    assert store.load(MODEL, "2").manifest.version == "2"
    assert _visible_state(store_root) == (["1", "2"], [])


# --------------------------------------------------------------------------- concurrency


def _save_in_process(root: str, seed: int, start_at: float, count: int) -> list[str]:
    """Worker process: wait for a common start, then save ``count`` versions."""
    store = ModelStore(root)
    while time.time() < start_at:
        time.sleep(0.001)
    return [
        store.save(MODEL, build_contents(seed=seed * 100 + i), **save_kwargs()).version
        for i in range(count)
    ]


def _promote_in_process(root: str, version: str, start_at: float) -> None:
    store = ModelStore(root)
    while time.time() < start_at:
        time.sleep(0.001)
    store.promote(MODEL, version)


def _spawn_pool(n: int):  # -> multiprocessing.pool.Pool
    return multiprocessing.get_context("spawn").Pool(n)


def test_concurrent_saves_from_four_processes_get_distinct_versions(
    store: ModelStore, store_root: Path
) -> None:
    start_at = time.time() + 2.0  # after every worker has imported numpy
    with _spawn_pool(4) as pool:
        results = pool.starmap(
            _save_in_process, [(str(store_root), seed, start_at, 3) for seed in range(4)]
        )
    versions = [v for per_process in results for v in per_process]
    assert sorted(versions, key=int) == [str(n) for n in range(1, 13)]
    assert _visible_state(store_root) == ([str(n) for n in range(1, 13)], [])
    for version in versions:  # each one whole and verifiable
        assert store.load(MODEL, version).manifest.version == version


def test_concurrent_saves_from_threads_get_distinct_versions(
    store: ModelStore, store_root: Path
) -> None:
    barrier = threading.Barrier(8)

    def save(seed: int) -> str:
        barrier.wait()
        return store.save(MODEL, build_contents(seed=seed), **save_kwargs()).version

    with ThreadPoolExecutor(8) as pool:
        versions = list(pool.map(save, range(8)))
    assert sorted(versions, key=int) == [str(n) for n in range(1, 9)]
    assert _visible_state(store_root)[1] == []


def test_concurrent_promotes_are_serialised(store: ModelStore, store_root: Path) -> None:
    for seed in range(8):
        store.save(MODEL, build_contents(seed=seed), **save_kwargs())
    start_at = time.time() + 2.0
    with _spawn_pool(4) as pool:
        pool.starmap(
            _promote_in_process, [(str(store_root), str(v), start_at) for v in (1, 2, 3, 4)]
        )
    barrier = threading.Barrier(4)

    def promote(version: str) -> None:
        barrier.wait()
        store.promote(MODEL, version)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(promote, ["5", "6", "7", "8"]))

    # No lost update: every promote is on the alias's history exactly once.
    history = [store.alias_state(MODEL)]
    while True:
        try:
            history.append(store.rollback(MODEL))
        except NothingToRollBack:
            break
    assert sorted(history, key=lambda v: int(str(v))) == [str(n) for n in range(1, 9)]
    assert os.path.exists(store_root / MODEL / ".lock")


def test_temp_dirs_of_killed_writers_are_swept_after_a_day(
    store: ModelStore, store_root: Path, saved: Saver
) -> None:
    saved()
    stale, fresh = store_root / MODEL / ".tmp-killed", store_root / MODEL / ".tmp-in-flight"
    for path in (stale, fresh):
        path.mkdir()
        (path / "tensors.safetensors").write_bytes(b"partial")
    two_days_ago = time.time() - 2 * 24 * 3600
    os.utime(stale, (two_days_ago, two_days_ago))

    saved()
    assert not stale.exists()
    assert fresh.exists()  # may belong to a writer that is still running


def test_the_sweep_skips_a_temp_dir_published_while_it_looks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    in_flight = tmp_path / ".tmp-another-writer"
    in_flight.mkdir()
    real_scandir = os.scandir

    def scandir_then_publish(path: Path) -> Iterator[os.DirEntry[str]]:
        entries = list(real_scandir(path))
        in_flight.rename(tmp_path / "published")  # the other writer's rename lands now
        return iter(entries)

    monkeypatch.setattr(backend_module.os, "scandir", scandir_then_publish)
    backend_module._sweep_stale_tmp(tmp_path)  # the vanished entry is skipped, not an error
    assert (tmp_path / "published").is_dir()


def test_the_fingerprint_ignores_a_file_still_being_written(tmp_path: Path) -> None:
    backend = LocalDirectoryBackend(tmp_path)
    backend.replace("m/versions/1/items.faiss", b"index")
    before = backend.fingerprint("m/versions/1")
    (tmp_path / "m/versions/1/.tmp-items.faiss-123").write_bytes(b"half written")
    assert backend.fingerprint("m/versions/1") == before
    backend.replace("m/versions/1/items.faiss", b"a new index")
    assert backend.fingerprint("m/versions/1") != before


def test_a_shared_lock_waits_for_the_exclusive_one_and_not_for_another_shared(
    tmp_path: Path,
) -> None:
    backend = LocalDirectoryBackend(tmp_path)
    got: list[str] = []

    def read() -> None:
        with backend.lock(MODEL, shared=True):
            got.append("read")

    with backend.lock(MODEL):  # a write in progress
        reader = threading.Thread(target=read)
        reader.start()
        reader.join(0.3)
        assert reader.is_alive() and got == []  # the read waits for the write
    reader.join(5)
    assert got == ["read"]
    with backend.lock(MODEL, shared=True):  # readers do not wait for each other
        read()
    assert got == ["read", "read"]


def test_a_shared_lock_without_a_lock_file_reads_unlocked(tmp_path: Path) -> None:
    # A read-only mount of a store no writer has locked: nothing to wait for.
    with LocalDirectoryBackend(tmp_path).lock("never-written", shared=True):
        pass
    assert not (tmp_path / "never-written").exists()


def test_a_save_that_fails_moving_its_tensors_file_leaves_nothing_visible(
    store: ModelStore, store_root: Path, saved: Saver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The tensors file is written by safetensors to the model's scratch directory and
    # moved into the version: a failure there leaves neither a version nor a temp dir.
    saved()

    def full_disk(source: Path, target: Path) -> None:
        raise OSError(errno.ENOSPC, "No space left on device (simulated)")

    monkeypatch.setattr(backend_module, "_move_durably", full_disk)
    with pytest.raises(OSError, match="simulated"):
        store.save(MODEL, build_contents(seed=9), **save_kwargs())
    assert _visible_state(store_root) == (["1"], [])
    monkeypatch.undo()
    assert store.save(MODEL, build_contents(seed=9), **save_kwargs()).version == "2"


def test_every_file_of_a_version_gets_the_same_permissions(
    store: ModelStore, store_root: Path, saved: Saver
) -> None:
    """safetensors writes the tensors file 0o600: a server running as another user than
    the trainer could read every file of the version but that one, and refused it."""
    version = saved()
    files = list((store_root / MODEL / "versions" / version).iterdir())
    modes = {f.name: stat.S_IMODE(f.stat().st_mode) for f in files}
    assert "tensors.safetensors" in modes
    assert set(modes.values()) == {modes["manifest.json"]}, modes


def test_the_folders_a_first_save_and_promote_create_are_synced_in_their_parents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Syncing a folder persists its entries, not its own entry in its parent: the first
    version of a model went into folders only ``mkdir`` had made, so a power loss could
    take the model although the save had returned."""
    synced: list[Path] = []
    real_fsync_dir = backend_module._fsync_dir

    def recording(path: Path) -> None:
        synced.append(Path(path))
        real_fsync_dir(path)

    monkeypatch.setattr(backend_module, "_fsync_dir", recording)
    root = tmp_path / "store"
    store = ModelStore(root)
    store.save(MODEL, build_contents(), **save_kwargs())
    for created in (root, root / MODEL, root / MODEL / "versions"):
        assert created.parent in synced, (created, synced)
    synced.clear()
    store.promote(MODEL, "1")
    assert root / MODEL in synced  # the new aliases folder's entry
