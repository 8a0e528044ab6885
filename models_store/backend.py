"""Where the store's bytes live: the handful of operations ``ModelStore`` needs.

``ModelStore`` speaks only to this interface, in keys like
``mult-vae/versions/3/manifest.json`` ("/"-separated, relative to the root).
``LocalDirectoryBackend`` implements it on a directory (a shared volume in
docker-compose). An object-store backend would implement the same methods:

* ``list(prefix)`` / ``read(key)`` — plain listing and whole-object reads;
* ``local_path(key)`` — a file the object can be read from in place, or None
  (here: its path; an object store: None, and the store reads bytes);
* ``publish_version(model, files, manifest_for)`` — make a complete version
  visible at once under a version number no other writer got (here: temp dir
  + fsync + ``rename``, retrying the next number when another writer won; on
  S3/GCS: upload the data files, then a conditional put of the manifest);
* ``replace(key, data)`` — atomic whole-object overwrite (aliases, manifests);
* ``replace_with_file(key, path)`` / ``scratch(model)`` — a file written in a
  private scratch directory moved into place (an index of gigabytes is never
  held as bytes; on S3/GCS: a multipart upload of the file);
* ``remove(key)`` — delete one object (an index a rebuild no longer names);
* ``remove_version(model, version)`` — delete a whole version at once, keeping
  its number from ever being published again (here: a ``.last-version`` mark,
  then one ``rename`` out of ``versions/``);
* ``fingerprint(prefix)`` — a cheap token that changes when any object under
  ``prefix`` is rewritten (here: names, sizes and mtimes; on S3/GCS: ETags or
  generations), so a server can notice a repaired version without re-reading it;
* ``lock(model, shared=False)`` — mutual exclusion for alias read-modify-write and
  index rebuilds, shared for loads (here: ``flock``; on an object store: a
  conditional put / generation match).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import stat
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Protocol

from models_store.errors import CorruptVersion, StoreError

VERSIONS = "versions"
ALIASES = "aliases"
TMP_PREFIX = ".tmp-"
LOCK_NAME = ".lock"
#: Serialises picking a version number (publish) with deleting one: see ``_numbering``.
NUMBERING_LOCK_NAME = ".numbering.lock"
#: ``<model>/.last-version``: the highest version number ever published or deleted, so a
#: number is never given to a second model (alias histories, job records and manifests
#: elsewhere name versions by number). Absent in stores older than it: then the highest
#: folder is the mark.
LAST_VERSION_NAME = ".last-version"
_MAX_PUBLISH_ATTEMPTS = 1000
# A temp dir this old belongs to a writer that was killed (no save takes a day);
# publish_version removes such leftovers so dead workers do not leak disk.
STALE_TMP_SECONDS = 24 * 3600


def _write_durably(path: Path, data: bytes) -> None:
    """Create ``path`` with ``data`` and fsync it, so a rename after this publishes real bytes."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)


def _move_durably(source: Path, target: Path) -> None:
    """fsync ``source`` and rename it to ``target`` (same filesystem), so a rename after
    this publishes real bytes.

    The file gets the permissions of the store's own files (``_write_durably``'s 0o644,
    less the umask): its writer may have made it private (safetensors' ``save_file``
    creates 0o600), and a server running as another user than the trainer (a container
    reading a store trained into from the host) could read every file of a version but
    its tensors, and refused the version."""
    fd = os.open(source, os.O_RDONLY)
    try:
        os.fchmod(fd, _new_file_mode(source.parent))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(source, target)


def _new_file_mode(folder: Path) -> int:
    """The permission bits ``_write_durably`` gives a new file in ``folder`` (0o644 less the
    umask), read from a probe file: ``os.umask`` can only be read by setting it, which
    would race with other threads creating files."""
    probe = folder / f"{TMP_PREFIX}mode-{uuid.uuid4().hex}"
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        return stat.S_IMODE(os.fstat(fd).st_mode)
    finally:
        os.close(fd)
        probe.unlink()


def _fsync_dir(path: Path) -> None:
    """Persist a directory's entries (new files, renames) across a power loss."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_dirs_durably(folder: Path) -> None:
    """Create ``folder`` and its missing parents, each parent synced after its new entry.

    Why: syncing a directory persists its own entries, not its entry in its parent. The
    first version of a model (and its first alias) went into folders that ``mkdir`` had
    just made: after a power loss the model could be gone although ``genrec train``
    had said it was saved."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for created in reversed(missing):
        with contextlib.suppress(FileExistsError):  # a concurrent writer made it: sync all the same
            created.mkdir()
        _fsync_dir(created.parent)


def _read_last_version(model_dir: Path) -> int:
    """The number in ``<model>/.last-version``; 0 when there is none (a store older than it).

    Why a mark that does not parse is an error and not 0: publishing under a number
    that was used before would make alias histories and job records name another
    model."""
    path = model_dir / LAST_VERSION_NAME
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return 0
    except (OSError, ValueError) as exc:
        raise StoreError(f"{path} cannot be read: {exc}; fix or remove it") from exc
    if not text.isdigit():
        raise StoreError(
            f"{path} holds {text[:40]!r}, not a version number; write the highest version "
            "number this model ever had into it"
        )
    return int(text)


def _sweep_stale_tmp(model_dir: Path) -> None:
    """Remove ``.tmp-*`` dirs (and files) left by writers killed mid-save (SIGKILL skips
    cleanup).

    A concurrent writer may rename (publish) or remove its own temp dir between
    the directory listing and the ``stat``; such an entry is simply gone, not
    an error (a 4-process save test hit exactly that).
    """
    cutoff = time.time() - STALE_TMP_SECONDS
    for entry in os.scandir(model_dir):
        if not entry.name.startswith(TMP_PREFIX):
            continue
        try:
            stale = entry.stat(follow_symlinks=False).st_mtime < cutoff
        except FileNotFoundError:
            continue
        if stale and entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        elif stale:  # the temp file of a ``.last-version`` write
            with contextlib.suppress(OSError):
                os.unlink(entry.path)


class Backend(Protocol):
    """What ``ModelStore`` needs from storage; see the module docstring."""

    def location(self, key: str) -> str: ...
    def list(self, prefix: str = "") -> list[str]: ...
    def read(self, key: str) -> bytes: ...
    def local_path(self, key: str) -> str | None: ...
    def publish_version(
        self,
        model: str,
        files: Mapping[str, bytes | Path],
        manifest_for: Callable[[str], bytes],
    ) -> str: ...
    def replace(self, key: str, data: bytes) -> None: ...
    def replace_with_file(self, key: str, path: Path) -> None: ...
    def remove(self, key: str) -> None: ...
    def remove_version(self, model: str, version: str) -> None: ...
    def scratch(self, model: str) -> contextlib.AbstractContextManager[Path]: ...
    def fingerprint(self, prefix: str) -> str: ...
    def lock(
        self, model: str, *, shared: bool = False
    ) -> contextlib.AbstractContextManager[None]: ...


class LocalDirectoryBackend:
    """The store on a local (or network-mounted) directory: ``<root>/<model>/...``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalDirectoryBackend({str(self.root)!r})"

    def location(self, key: str) -> str:
        """Human-readable place of ``key``, for messages and ``LoadedVersion.path``."""
        return str(self.root / key)

    # -- reads -----------------------------------------------------------------------------

    def list(self, prefix: str = "") -> list[str]:
        """Names directly under ``prefix`` (sorted); empty when it does not exist."""
        try:
            return sorted(entry.name for entry in os.scandir(self.root / prefix))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def read(self, key: str) -> bytes:
        """Whole content of ``key``; ``FileNotFoundError`` when absent."""
        with open(self._in_store(key), "rb") as handle:
            return handle.read()

    def local_path(self, key: str) -> str:
        """The file of ``key`` (it may not exist): large files are hashed and read in place."""
        return str(self._in_store(key))

    def _in_store(self, key: str) -> Path:
        """The path of ``key``; ``CorruptVersion`` when it is a file of a version (or in a
        version's folder) that resolves, through a link, outside the store.

        Why: the store reads a verified file again by its path and maps the indexes,
        trusting that nothing but itself writes a published version. A file outside
        the store is someone else's: it can be rewritten after it was verified (bytes
        served that no checksum vouched for; a mapped index cut short kills the
        process), and a link to a device or a pipe made a load read forever
        (``/dev/zero``: ``MemoryError``) or block for good under the model's lock.
        Checksums cover what a file held when it was read, not these.

        "The store" is the resolved root, or the resolved folder of the key's model: a
        root that is itself a link (a volume mounted elsewhere), or a model's folder
        moved to another disk and linked back, is the store. Only a version's files are
        checked; aliases and listings are left as they were.
        """
        path = self.root / key
        parts = key.split("/")
        if len(parts) < 3 or parts[1] != VERSIONS:
            return path
        real = os.path.realpath(path)  # never raises: a loop or a missing file is its reader's
        homes = (os.path.realpath(self.root), os.path.realpath(self.root / parts[0]))
        if not any(real == home or real.startswith(home + os.sep) for home in homes):
            raise CorruptVersion(
                f"{path} resolves to {real}, outside the store ({homes[0]}): a version's "
                "files must be in the store, not links out of it (copy the file in)"
            )
        return path

    def fingerprint(self, prefix: str) -> str:
        """Names, sizes and mtimes of the files under ``prefix``: changes when one is rewritten.

        Hidden names (the temp file of a write in progress) are left out: a file being
        written is not a change until it replaces the one it is written for.
        """
        try:
            entries = sorted(
                (e for e in os.scandir(self.root / prefix) if not e.name.startswith(".")),
                key=lambda entry: entry.name,
            )
            stats = [(entry.name, entry.stat()) for entry in entries]
        except (FileNotFoundError, NotADirectoryError):
            return ""
        return ";".join(f"{name}:{st.st_size}:{st.st_mtime_ns}" for name, st in stats)

    # -- writes ----------------------------------------------------------------------------

    def publish_version(
        self,
        model: str,
        files: Mapping[str, bytes | Path],
        manifest_for: Callable[[str], bytes],
    ) -> str:
        """Make ``files`` + ``manifest.json`` visible as the next free version; return it.

        A file given as a path (one in ``scratch(model)``: the same filesystem) is
        synced and moved into the version, never read into memory.

        The files are written once into ``<model>/.tmp-*``; then, for candidate
        N = max existing + 1, the manifest for N is written and the temp dir is
        renamed to ``versions/N``. A rename onto an existing version fails
        (non-empty target), so a concurrent writer that took N makes us retry
        with a fresh N. Any failure removes the temp dir: nothing half-written
        is ever visible under ``versions/``.

        N also exceeds the mark in ``<model>/.last-version``, which every publish raises
        (and ``remove_version`` too): a number whose folder was deleted, by
        ``remove_version`` or by hand, is never given out again. Picking N and
        renaming happen under the model's numbering lock, which ``remove_version``
        takes as well: without it a writer could pick N before N was published and
        deleted, then rename onto the freed N.
        """
        model_dir = self.root / model
        versions_dir = model_dir / VERSIONS
        _make_dirs_durably(versions_dir)
        _sweep_stale_tmp(model_dir)
        tmp = model_dir / f"{TMP_PREFIX}{uuid.uuid4().hex}"
        tmp.mkdir()
        try:
            for name, data in files.items():
                if isinstance(data, Path):
                    _move_durably(data, tmp / name)
                else:
                    _write_durably(tmp / name, data)
            with self._numbering(model):
                version = self._rename_into_place(tmp, versions_dir, manifest_for)
                self._raise_last_version(model_dir, int(version))
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _fsync_dir(versions_dir)
        return version

    def _rename_into_place(
        self, tmp: Path, versions_dir: Path, manifest_for: Callable[[str], bytes]
    ) -> str:
        manifest_path = tmp / "manifest.json"
        for _ in range(_MAX_PUBLISH_ATTEMPTS):
            version = str(self._next_version(versions_dir))
            manifest_path.unlink(missing_ok=True)
            _write_durably(manifest_path, manifest_for(version))
            _fsync_dir(tmp)
            try:
                os.rename(tmp, versions_dir / version)
            except OSError as exc:
                if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                    continue  # another writer published this number first
                raise
            return version
        raise StoreError(
            f"could not publish a version under {versions_dir} after "
            f"{_MAX_PUBLISH_ATTEMPTS} attempts (too many concurrent writers?)"
        )

    @staticmethod
    def _next_version(versions_dir: Path) -> int:
        """Max of the published version numbers and of the ``.last-version`` mark, + 1 (a stale
        answer only costs a retry)."""
        numbers = [int(name) for name in os.listdir(versions_dir) if name.isdigit()]
        return max(*numbers, _read_last_version(versions_dir.parent), 0) + 1

    @staticmethod
    def _raise_last_version(model_dir: Path, version: int) -> None:
        """Make ``<model>/.last-version`` at least ``version``, durably (under the
        numbering lock)."""
        if _read_last_version(model_dir) >= version:
            return
        tmp = model_dir / f"{TMP_PREFIX}{LAST_VERSION_NAME[1:]}-{uuid.uuid4().hex}"
        try:
            _write_durably(tmp, f"{version}\n".encode())
            os.replace(tmp, model_dir / LAST_VERSION_NAME)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(model_dir)

    def remove_version(self, model: str, version: str) -> None:
        """Delete ``<model>/versions/<version>`` whole, and keep its number from coming back.

        The mark in ``<model>/.last-version`` is raised to the number first; then the folder is
        renamed out of ``versions/`` into a ``.tmp-*`` folder (one atomic rename: a crash
        leaves the whole version or none of it visible; a leftover temp folder is swept
        by a later publish) and removed. ``FileNotFoundError`` when there is no such
        folder.
        """
        model_dir = self.root / model
        versions_dir = model_dir / VERSIONS
        source = versions_dir / version
        if not source.is_dir():
            raise FileNotFoundError(errno.ENOENT, "no such version folder", str(source))
        with self._numbering(model):
            numbers = [int(n) for n in os.listdir(versions_dir) if n.isdigit()]
            self._raise_last_version(model_dir, max(*numbers, int(version)))
            trash = model_dir / f"{TMP_PREFIX}deleted-{version}-{uuid.uuid4().hex}"
            os.rename(source, trash)
            _fsync_dir(versions_dir)
            _fsync_dir(model_dir)
        shutil.rmtree(trash, ignore_errors=True)

    @contextlib.contextmanager
    def _numbering(self, model: str) -> Iterator[None]:
        """Exclusive lock on ``<model>/.numbering.lock``: picking a version number and
        deleting one. Not the model's ``lock``: an index rebuild holds that for minutes,
        and a save (which does not need it) would wait behind it."""
        fd = os.open(self.root / model / NUMBERING_LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the flock

    def replace(self, key: str, data: bytes) -> None:
        """Atomically make ``key`` hold ``data`` (temp file, fsync, ``os.replace``)."""
        target = self.root / key
        _make_dirs_durably(target.parent)
        tmp = target.parent / f"{TMP_PREFIX}{target.name}-{uuid.uuid4().hex}"
        try:
            _write_durably(tmp, data)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(target.parent)

    def replace_with_file(self, key: str, path: Path) -> None:
        """Atomically make ``key`` the file at ``path`` (a file in ``scratch``: the same
        filesystem, so it is moved, not copied: a gigabyte index is never held in memory)."""
        target = self.root / key
        _make_dirs_durably(target.parent)
        _move_durably(path, target)
        _fsync_dir(target.parent)

    @contextlib.contextmanager
    def scratch(self, model: str) -> Iterator[Path]:
        """A private directory beside the model's versions for files about to be added
        (``replace_with_file``); removed afterwards, and swept like any temp dir if its
        writer was killed."""
        model_dir = self.root / model
        created = not model_dir.exists()
        _make_dirs_durably(model_dir)  # the folder the version is published in, if it is new
        path = model_dir / f"{TMP_PREFIX}{uuid.uuid4().hex}"
        path.mkdir()
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)
            if created:  # a save of a new model that failed leaves no empty directory
                with contextlib.suppress(OSError):
                    model_dir.rmdir()

    def remove(self, key: str) -> None:
        """Delete ``key`` (gone already is fine), durably (the directory is synced)."""
        target = self.root / key
        target.unlink(missing_ok=True)
        _fsync_dir(target.parent)

    @contextlib.contextmanager
    def lock(self, model: str, *, shared: bool = False) -> Iterator[None]:
        """Lock on ``<model>/.lock`` across threads and processes (``flock``): exclusive
        for the store's writes, ``shared`` for reads that must see no write half done.

        Each call opens its own file description, so two threads of one
        process exclude each other too (and a thread holding the exclusive lock
        must not ask for a shared one). A reader that cannot open the lock file
        (a read-only mount where no writer ever made one) reads without it.
        """
        model_dir = self.root / model
        try:
            if shared:
                fd = os.open(model_dir / LOCK_NAME, os.O_RDONLY)
            else:
                model_dir.mkdir(parents=True, exist_ok=True)
                fd = os.open(model_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            if not shared:
                raise
            yield  # no writer has locked this model here, or none can
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the flock


__all__ = ["Backend", "LocalDirectoryBackend"]
