"""``ModelStore``: versioned, verified, immutable model artifacts with movable aliases.

Layout under the root (the local backend; an object store mirrors the keys)::

    <model>/versions/<N>/manifest.json          Manifest (checksums of the files below)
    <model>/versions/<N>/tensors.safetensors    scorer tensors
    <model>/versions/<N>/history.safetensors    training matrix rows (CSR)
    <model>/versions/<N>/user_ids.json          item_ids.json, extra files...
    <model>/aliases/<alias>.json                {"version", "previous": [...], "updated_at"}

A version appears whole or not at all (see ``backend.publish_version``) and
its contents are never modified; the one later addition is a derived
retrieval index (``add_retrieval_index``: a new file, checksummed in the
manifest like the others, computed from the version's own tensors). ``load`` refuses anything that does not verify: a file
missing, a file the manifest does not list, a checksum or size mismatch, an
unknown format version, or content that does not parse. Aliases are the only
mutable state; ``promote`` and ``rollback`` move them under a per-model lock.
``delete_version`` removes a version no alias points at, whole, and its number
is never published again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from models_store.backend import ALIASES, VERSIONS, Backend, LocalDirectoryBackend
from models_store.contents import (
    MANIFEST_FILE,
    REQUIRED_FILES,
    RESERVED_FILES,
    TENSORS_FILE,
    USER_IDS_FILE,
    ContentsError,
    VersionContents,
    decode,
    encode,
    load_ids,
)
from models_store.errors import (
    AliasChanged,
    AliasNotSet,
    CorruptVersion,
    InvalidContents,
    ModelNotFound,
    NothingToRollBack,
    StoreError,
    UnreadableAlias,
    VersionInUse,
    VersionNotFound,
)
from models_store.manifest import (
    DataInfo,
    FileEntry,
    Manifest,
    utc_now_iso,
    validate_name,
    validate_version,
)

MAX_ALIAS_HISTORY = 100  # rollback depth kept per alias


@dataclass(frozen=True)
class Promotion:
    """What an operator's promotion (``ModelStore.promote_by_operator``) did, for its answer."""

    manifest: Manifest
    #: The version the alias named before; None when it was unset or its file unreadable.
    previous: str | None
    #: The alias file that did not parse and was replaced (its location), else None.
    replaced: str | None = None
    #: Where that file's bytes are kept, beside it (``<alias>.json.unreadable-<time>``).
    kept_as: str | None = None


@dataclass(frozen=True)
class LoadedVersion:
    """A verified version: its manifest, its data, and where it lives (for messages)."""

    manifest: Manifest
    contents: VersionContents
    path: str
    #: Verified files that are not held in memory (the retrieval index): name -> local path.
    mapped: dict[str, str] = field(default_factory=dict)
    #: ``ModelStore.version_fingerprint`` of the files as they were read.
    fingerprint: str = ""


@dataclass(frozen=True)
class _AliasRecord:
    version: str
    previous: list[str]
    updated_at: str

    def to_json(self) -> bytes:
        body = {"version": self.version, "previous": self.previous, "updated_at": self.updated_at}
        return (json.dumps(body, indent=2) + "\n").encode("utf-8")


def _entry_of(blob: bytes | Path) -> FileEntry:
    """Size and sha256 of bytes, or of a file hashed as a stream."""
    if isinstance(blob, Path):
        with open(blob, "rb") as handle:
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
            return FileEntry(sha256=digest, bytes=os.fstat(handle.fileno()).st_size)
    return FileEntry(sha256=hashlib.sha256(blob).hexdigest(), bytes=len(blob))


def _check_size(where: str, size: int, entry: FileEntry) -> None:
    if size != entry["bytes"]:
        raise CorruptVersion(f"{where} has {size} bytes; the manifest says {entry['bytes']}")


def _check_digest(where: str, digest: str, entry: FileEntry) -> None:
    if digest != entry["sha256"]:
        raise CorruptVersion(
            f"{where} sha256 {digest} does not match the manifest's {entry['sha256']}"
        )


class ModelStore:
    """Save, verify, list and alias model versions. Thread- and process-safe."""

    def __init__(
        self, root: str | os.PathLike[str] | None = None, *, backend: Backend | None = None
    ) -> None:
        if backend is None:
            if root is None:
                raise TypeError("ModelStore needs a root directory or a backend")
            backend = LocalDirectoryBackend(root)
        elif root is not None:
            raise TypeError("ModelStore takes a root directory or a backend, not both")
        self.backend: Backend = backend

    def __repr__(self) -> str:
        return f"ModelStore({self.backend!r})"

    # -- writing ---------------------------------------------------------------------------

    def save(
        self,
        model: str,
        contents: VersionContents,
        *,
        scorer_config: dict[str, Any],
        hyper_parameters: dict[str, Any],
        metrics: dict[str, float],
        data: DataInfo,
        training: dict[str, Any] | None = None,
        retrieval: dict[str, Any] | None = None,
        index_files: Mapping[str, Path] | None = None,
    ) -> Manifest:
        """Publish ``contents`` atomically as the next version of ``model``; return its manifest.

        ``retrieval`` (the index parameters, with ``file`` naming one of
        ``contents.extra`` or of ``index_files``) goes into the manifest as is.
        ``index_files`` are files in ``scratch(model)``, moved into the version (an
        index of a gigabyte is never held as bytes); the tensors file is written
        by safetensors straight to a scratch file too.

        Everything is validated before the first byte is written, so bad input
        raises ``InvalidContents``/``InvalidName`` and leaves the store as it was.
        """
        validate_name(model, "model name")
        for name in index_files or {}:
            validate_name(name, "index file name")
            if name in RESERVED_FILES or name in contents.extra:
                raise InvalidContents(f"cannot save {model!r}: index file {name!r} is taken")
        with self.scratch(model) as scratch:
            try:
                files = encode(contents, tensors_path=scratch / TENSORS_FILE)
            except ContentsError as exc:
                raise InvalidContents(f"cannot save {model!r}: {exc}") from exc
            files.update(index_files or {})
            entries = {name: _entry_of(blob) for name, blob in files.items()}
            # Built (and so validated) with a placeholder version; the backend picks the real one.
            template = Manifest(
                model=model,
                version="1",
                created_at=utc_now_iso(),
                data=data,
                hyper_parameters=hyper_parameters,
                scorer_config=scorer_config,
                metrics=metrics,
                training=training if training is not None else {},
                files=entries,
                retrieval=retrieval if retrieval is not None else {},
            )

            def manifest_for(version: str) -> bytes:
                return replace(template, version=version).to_json().encode("utf-8")

            version = self.backend.publish_version(model, files, manifest_for)
        return replace(template, version=version)

    # -- reading ---------------------------------------------------------------------------

    def load(
        self, model: str, version: str | int, *, tensors: Collection[str] | None = None
    ) -> LoadedVersion:
        """Read and verify every file of a version (format, file set, sizes, sha256, content).

        ``tensors`` names the only arrays to read from the tensors file (the whole file is
        still verified): for a tool that needs part of a model, as an index build needs
        its item table (``Scorer.table_tensors``).

        Under the model's shared lock: an index rebuild (``add_retrieval_index``, under
        the exclusive one) is never seen half written, so a server that notices its
        files changing waits for the rebuild and loads the result once, instead of
        refusing the version it serves (or loading it again) at each step.
        """
        with self.reading(model, version, tensors=tensors) as loaded:
            return loaded

    @contextlib.contextmanager
    def reading(
        self, model: str, version: str | int, *, tensors: Collection[str] | None = None
    ) -> Iterator[LoadedVersion]:
        """``load``, with the model's shared lock held until the block ends.

        For a caller that opens the version's mapped files (``LoadedVersion.mapped``: the
        indexes, read by path) after loading it: inside the block no rebuild can replace
        them, so what it maps is what the manifest it got describes. The block should be
        short; a rebuild waits for it.
        """
        with self.backend.lock(validate_name(model, "model name"), shared=True):
            yield self._load(model, version, tensors=tensors)

    def _load(
        self, model: str, version: str | int, *, tensors: Collection[str] | None = None
    ) -> LoadedVersion:
        """``load`` for callers that hold the model's lock already."""
        manifest = self.manifest(model, version)
        prefix = _version_key(manifest.model, manifest.version)
        where = self.backend.location(prefix)
        fingerprint = self.backend.fingerprint(prefix)
        self._check_file_set(manifest, prefix, where)
        mapped_names = manifest.mapped_files()
        blobs = {}
        tensors_path = None
        for name, entry in manifest.files.items():
            # The big files: hashed as a stream, then read in place (the tensors) or mapped
            # by their reader (the indexes), never held as bytes.
            if (name == TENSORS_FILE or name in mapped_names) and (
                path := self._verify_in_place(prefix, name, entry)
            ):
                tensors_path = path if name == TENSORS_FILE else tensors_path
                continue
            blob = self._read_verified(prefix, name, entry)
            if name not in mapped_names:  # an index is verified here, mapped by its reader
                blobs[name] = blob
        try:
            contents = decode(blobs, tensors_path, tensors=tensors)
        except ContentsError as exc:
            raise CorruptVersion(f"{where}: {exc}") from exc
        _check_index_items(manifest, len(contents.item_ids), where)
        mapped = {name: self.backend.location(f"{prefix}/{name}") for name in mapped_names}
        return LoadedVersion(
            manifest=manifest, contents=contents, path=where, mapped=mapped, fingerprint=fingerprint
        )

    def verify(self, model: str, version: str | int) -> Manifest:
        """Check a version's file set, sizes and sha256 without decoding it; its manifest.

        Hashed as streams on a local directory (one file's bytes at a time
        elsewhere): adding an index needs none of the arrays ``load`` decodes,
        which for a million-item model are gigabytes.
        """
        return self._verify(model, version, replaced=frozenset())

    def _verify(self, model: str, version: str | int, replaced: frozenset[str]) -> Manifest:
        """``verify``, except for the files named in ``replaced``: these may be missing,
        unlisted or differ from their checksums (an index rebuild is about to replace
        or delete them)."""
        manifest = self.manifest(model, version)
        prefix = _version_key(manifest.model, manifest.version)
        self._check_file_set(manifest, prefix, self.backend.location(prefix), replaced)
        for name, entry in manifest.files.items():
            if name not in replaced and self._verify_in_place(prefix, name, entry) is None:
                self._read_verified(prefix, name, entry)
        return manifest

    def add_retrieval_index(
        self,
        model: str,
        version: str | int,
        files: Mapping[str, bytes | Path],
        retrieval: dict[str, Any],
        *,
        index_names: Collection[str] = (),
    ) -> Manifest:
        """Add (or replace) the index files of an existing version; return the new manifest.

        A file is given as bytes or as the path of a file in ``scratch(model)``, which is
        hashed as a stream and moved into place (never read into memory).

        The only change a published version accepts: ``files`` must be exactly the
        files ``retrieval`` names (``Manifest.mapped_files``: the retrieval index and,
        when there is one, the similar-items index); each is written first
        (atomically), then the manifest gains their checksums and ``retrieval``
        (atomically), under the model's lock. Nothing else the version held
        changes. An index file the old ``retrieval`` named and the new one does not
        (an index the caller no longer builds) is deleted after the manifest no
        longer lists it.

        An interrupted rebuild (a crash or Ctrl-C between the writes) leaves index
        files that differ from the manifest's checksums or that it does not list: the
        version is refused, with the file named, and servers that loaded it keep
        serving. Running the rebuild again repairs it: every file is verified as
        usual except the index files, those the manifest names and ``index_names``
        (every name the caller's indexes may have, so a leftover it no longer
        writes is recognised and deleted), which are all about to be replaced.
        """
        model = validate_name(model, "model name")
        version = validate_version(version)
        names = sorted(validate_name(name, "retrieval file name") for name in files)
        known = {validate_name(name, "index file name") for name in index_names}
        for name in {*names, *known}:
            if name in RESERVED_FILES:
                raise InvalidContents(
                    f"retrieval file name {name!r} is reserved for the store's own files"
                )
        prefix = _version_key(model, version)
        with self.backend.lock(model):
            current = self.manifest(model, version)
            mapped = set(current.mapped_files())
            if clash := sorted({*names, *known} & (set(current.files) - mapped)):
                raise InvalidContents(f"{model} version {version} already has a file {clash[0]!r}")
            replaceable = mapped | known | set(names)
            # Only a version that verifies, but for the files about to be replaced.
            manifest = self._verify(model, version, replaced=frozenset(replaceable))
            entries = {name: _entry_of(blob) for name, blob in files.items()}
            kept = {n: e for n, e in manifest.files.items() if n not in mapped}
            updated = replace(manifest, files={**kept, **entries}, retrieval=dict(retrieval))
            if sorted(updated.mapped_files()) != names:
                raise InvalidContents(
                    f"retrieval names the files {sorted(updated.mapped_files())}, "
                    f"but {names} were given"
                )
            for name, blob in files.items():
                if isinstance(blob, Path):
                    self.backend.replace_with_file(f"{prefix}/{name}", blob)
                else:
                    self.backend.replace(f"{prefix}/{name}", blob)
            self.backend.replace(f"{prefix}/{MANIFEST_FILE}", updated.to_json().encode("utf-8"))
            present = set(self.backend.list(prefix))
            for name in sorted((replaceable - set(names)) & present):
                self.backend.remove(f"{prefix}/{name}")
        return updated

    def scratch(self, model: str) -> contextlib.AbstractContextManager[Path]:
        """A private directory on the store's filesystem for files about to be given to
        ``add_retrieval_index`` by path; removed when the block ends."""
        return self.backend.scratch(validate_name(model, "model name"))

    def manifest(self, model: str, version: str | int) -> Manifest:
        """The manifest of a version (format checked; file checksums not read)."""
        model = validate_name(model, "model name")
        version = validate_version(version)
        self._require_version(model, version)
        key = f"{_version_key(model, version)}/{MANIFEST_FILE}"
        where = self.backend.location(key)
        try:
            raw = self.backend.read(key)
        except FileNotFoundError as exc:
            raise CorruptVersion(f"{where} is missing") from exc
        manifest = Manifest.from_json(raw, where)
        if (manifest.model, manifest.version) != (model, version):
            raise CorruptVersion(
                f"{where} describes {manifest.model!r} version {manifest.version}, "
                f"not {model!r} version {version} (a copied or moved directory?)"
            )
        return manifest

    def user_ids(self, model: str, version: str | int) -> list[str]:
        """The external ids of the users a version was trained on (its ``user_ids.json``,
        size and sha256 verified), without the rest: for a question about whom a version
        holds (erasure records no stored version needs, ``app.users.prune``), which
        ``load`` answered only after decoding every array of every version."""
        manifest = self.manifest(model, version)
        prefix = _version_key(manifest.model, manifest.version)
        entry = manifest.files.get(USER_IDS_FILE)
        if entry is None:
            where = self.backend.location(f"{prefix}/{MANIFEST_FILE}")
            raise CorruptVersion(f"{where} lists no {USER_IDS_FILE}")
        blob = self._read_verified(prefix, USER_IDS_FILE, entry)
        try:
            return load_ids(blob, USER_IDS_FILE)
        except ContentsError as exc:
            raise CorruptVersion(f"{self.backend.location(prefix)}: {exc}") from exc

    def list_models(self) -> list[str]:
        """Names of the models that have at least one version, sorted."""
        return [
            name
            for name in self.backend.list()
            if _is_valid_name(name, "model name") and self._version_numbers(name)
        ]

    def list_versions(self, model: str) -> list[Manifest]:
        """Manifests of every version of ``model``, oldest (lowest number) first."""
        model = validate_name(model, "model name")
        return [self.manifest(model, v) for v in self._require_model(model)]

    def version_listing(self, model: str) -> tuple[list[Manifest], dict[str, str]]:
        """Like ``list_versions``, for listings: a version whose manifest cannot be read
        is reported (version -> why) instead of failing the list. One hand-edited or
        half-copied version hid every model from ``genrec models list`` and
        ``GET /admin/models``; a listing is where an operator looks to find it."""
        model = validate_name(model, "model name")
        readable: list[Manifest] = []
        unreadable: dict[str, str] = {}
        for version in self._require_model(model):
            try:
                readable.append(self.manifest(model, version))
            except StoreError as exc:
                unreadable[version] = str(exc)
            except OSError as exc:  # a file where the version's folder belongs, a loop, ...
                unreadable[version] = f"{exc.filename}: {exc.strerror or exc}"
        return readable, unreadable

    # -- aliases ---------------------------------------------------------------------------

    def resolve(self, model: str, ref: str | int = "production") -> str:
        """Version named by ``ref``: a version number (checked to exist) or an alias name."""
        model = validate_name(model, "model name")
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
            version = validate_version(ref)
            self._require_version(model, version)
            return version
        alias = validate_name(ref, "alias")
        record = self._read_alias(model, alias)
        if record is None:
            self._require_model(model)
            raise AliasNotSet(f"alias {alias!r} of model {model!r} is not set; promote a version")
        return record.version

    def aliases(self, model: str) -> dict[str, str]:
        """Alias name -> version for ``model``."""
        model = validate_name(model, "model name")
        self._require_model(model)
        out: dict[str, str] = {}
        folder = f"{model}/{ALIASES}"
        try:
            names = self.backend.list(folder)
        except OSError as exc:  # no permission, a link loop: this model's problem, said so
            raise StoreError(
                f"alias folder {self.backend.location(folder)} cannot be read: "
                f"{exc.strerror or exc}"
            ) from exc
        for name in names:
            if name.endswith(".json") and _is_valid_name(name.removesuffix(".json"), "alias"):
                record = self._read_alias(model, name.removesuffix(".json"))
                if record is not None:
                    out[name.removesuffix(".json")] = record.version
        return out

    def alias_state(self, model: str, alias: str = "production") -> str | None:
        """Version the alias points at, or None if unset: one small read, safe to poll."""
        record = self._read_alias(validate_name(model, "model name"), validate_name(alias, "alias"))
        return None if record is None else record.version

    def alias_history(self, model: str, alias: str = "production") -> list[str]:
        """The alias's version, then the versions a rollback would go back to, most
        recent first; empty if unset (one small read)."""
        record = self._read_alias(validate_name(model, "model name"), validate_name(alias, "alias"))
        return [] if record is None else [record.version, *record.previous]

    def alias_marker(self, model: str, alias: str = "production") -> tuple[str, str] | None:
        """(version, updated_at) of the alias, or None if unset: one small read, safe to poll.

        ``updated_at`` changes on every promotion, also of the version the alias
        already names, so a server that refused that version sees it promoted again.
        """
        record = self._read_alias(validate_name(model, "model name"), validate_name(alias, "alias"))
        return None if record is None else (record.version, record.updated_at)

    def version_fingerprint(self, model: str, version: str | int) -> str:
        """A token that changes when a file of the version is rewritten (without reading it)."""
        model = validate_name(model, "model name")
        return self.backend.fingerprint(_version_key(model, validate_version(version)))

    def promote(
        self,
        model: str,
        version: str | int,
        alias: str = "production",
        only_from: Collection[str | None] | None = None,
        *,
        replace_unreadable: bool = False,
    ) -> Manifest:
        """Point ``alias`` at ``version`` after verifying it fully; the old target is kept for rollback.

        Promoting the version the alias already names rewrites the alias (a new
        ``updated_at``, the same history): servers that refused that version while
        it was broken take that as the signal to load it again.

        ``only_from`` (the versions the caller decided against; None in it: the alias
        unset): ``AliasChanged`` unless the alias is at one of them or already at
        ``version``, checked under the model's lock, so a promotion decided a while
        ago (a retrain job's gate) never undoes a promotion or rollback made since.

        ``replace_unreadable`` (an operator's explicit promotion): an alias file that
        does not parse is replaced, under the lock, by one at ``version`` with no
        rollback history (the old history cannot be read, and a guessed one could
        send a rollback anywhere); its bytes are kept beside it as
        ``<alias>.json.unreadable-<time>``, which no listing reads as an alias.
        Otherwise, and always with ``only_from`` (where the alias was is unknown) or
        a file that cannot be read at all (no permission, a folder: replacing what
        cannot be seen is not safe), ``UnreadableAlias`` naming the file.
        """
        return self._promote(model, version, alias, only_from, replace_unreadable).manifest

    def promote_by_operator(
        self, model: str, version: str | int, alias: str = "production"
    ) -> Promotion:
        """An operator's explicit promotion: ``promote`` with ``replace_unreadable``, saying
        what it found (the version the alias named, checked under the lock; the unreadable
        alias file it replaced and where its bytes are kept).

        The one path of ``genrec models promote`` and ``POST /admin/models/{name}/promote``
        (and the dashboard, through the route): the route promoted without the repair, so
        an alias file that did not parse was a 409 there that only the command line fixed.
        """
        return self._promote(model, version, alias, None, replace_unreadable=True)

    def _promote(
        self,
        model: str,
        version: str | int,
        alias: str,
        only_from: Collection[str | None] | None,
        replace_unreadable: bool,
    ) -> Promotion:
        model = validate_name(model, "model name")
        alias = validate_name(alias, "alias")
        manifest = self.load(model, version).manifest  # raises: alias untouched
        with self.backend.lock(model):
            try:
                record = self._read_alias(model, alias)
            except UnreadableAlias as exc:
                if not replace_unreadable or only_from is not None or exc.raw is None:
                    raise
                stamp = utc_now_iso().replace("-", "").replace(":", "")
                kept = f"{model}/{ALIASES}/{alias}.json.unreadable-{stamp}"
                self.backend.replace(kept, exc.raw)
                self._write_alias(model, alias, manifest.version, [])
                return Promotion(manifest, None, exc.where, self.backend.location(kept))
            if record is not None and record.version == manifest.version:
                self._write_alias(model, alias, manifest.version, record.previous)
                return Promotion(manifest, record.version)
            current = None if record is None else record.version
            if only_from is not None and current not in only_from:
                raise AliasChanged(
                    f"alias {alias!r} of model {model!r} is at version {current or '(unset)'}, "
                    f"not {' or '.join(str(v or '(unset)') for v in only_from)}: it moved "
                    f"since; version {manifest.version} was not promoted"
                )
            previous = [] if record is None else [record.version, *record.previous]
            self._write_alias(model, alias, manifest.version, previous)
        return Promotion(manifest, current)

    def rollback(
        self, model: str, alias: str = "production", expected: str | int | None = None
    ) -> str:
        """Move ``alias`` back to the version it pointed at before; return that version.

        With ``expected`` (the version the caller saw the alias at), ``AliasChanged``
        unless the alias still points there, checked under the model's lock: a
        rollback sent twice (a double click, a retried request) moves the alias
        once, not two steps back.
        """
        model = validate_name(model, "model name")
        alias = validate_name(alias, "alias")
        wanted = None if expected is None else validate_version(expected)
        self._require_model(model)  # before the lock, which would create the model's folder
        with self.backend.lock(model):
            record = self._read_alias(model, alias)
            if record is None:
                raise AliasNotSet(
                    f"alias {alias!r} of model {model!r} is not set; nothing to roll back"
                )
            if wanted is not None and record.version != wanted:
                raise AliasChanged(
                    f"alias {alias!r} of model {model!r} is at version {record.version}, "
                    f"not {wanted}: it moved since; nothing was rolled back"
                )
            if not record.previous:
                raise NothingToRollBack(
                    f"alias {alias!r} of model {model!r} is at version {record.version} "
                    "and has no previous version"
                )
            target = record.previous[0]
            try:  # a version that no longer verifies is not rolled back to
                self._load(model, target)
            except StoreError as exc:
                # Said as the rollback's target: alone, "model 'm' has no version 2" answered
                # a command that named no version.
                raise type(exc)(
                    f"cannot roll back alias {alias!r} of model {model!r} from version "
                    f"{record.version} to version {target}: {exc}; promote a version instead"
                ) from exc
            self._write_alias(model, alias, target, record.previous[1:])
        return target

    @contextlib.contextmanager
    def holding(self, models: Collection[str]) -> Iterator[None]:
        """The exclusive lock of each of ``models`` that has versions, until the block ends
        (in name order, so two holders never wait on each other).

        For a caller outside the store whose decision must not be undone by a delete
        meanwhile: creating an experiment holds it while it checks the versions its
        variants pin and records the experiment, and ``delete_version`` runs its
        caller's ``check`` (is a running experiment pinning it?) under the same lock.
        Checked apart, an experiment created between the delete's check and the delete
        pinned a version that was gone. A model without versions is skipped: nothing to
        delete there, and the lock would create its folder. Exclusive, not shared: the
        shared lock is taken without a lock file when none exists yet, which excludes
        nothing. A block should be short; loads of the model wait for it.
        """
        names = sorted({validate_name(m, "model name") for m in models})
        with contextlib.ExitStack() as stack:
            for model in names:
                if self._version_numbers(model):
                    stack.enter_context(self.backend.lock(model))
            yield

    def delete_version(
        self, model: str, version: str | int, check: Callable[[], None] | None = None
    ) -> list[str]:
        """Delete a version no alias points at; return the aliases whose rollback history
        named it (they no longer do).

        Under the model's lock, so no promotion, rollback or index rebuild runs meanwhile
        and no load is half way through it: ``VersionInUse`` (nothing changed) when an
        alias points at the version; ``check``, the caller's own refusal (it raises to
        refuse), runs under the lock too, so what it checked holds until the version is
        gone for whoever decides under ``holding`` (an experiment's creation); otherwise
        the version leaves every alias's history (a rollback never targets a version
        that is gone), then its folder goes at once (``Backend.remove_version``). Its
        number is never given to a later save: job records, alias histories and
        manifests elsewhere that name it must never name another model. A version that
        does not verify can be deleted: removing a broken version is one reason to
        delete.
        """
        model = validate_name(model, "model name")
        version = validate_version(version)
        self._require_version(model, version)  # before the lock, which would create the folder
        with self.backend.lock(model):
            self._require_version(model, version)  # deleted meanwhile by another caller
            records = {a: self._read_alias(model, a) for a in self.aliases(model)}
            if holders := sorted(a for a, r in records.items() if r and r.version == version):
                raise VersionInUse(
                    f"version {version} of model {model!r} is what alias "
                    f"{', '.join(holders)} points at; promote another version first"
                )
            if check is not None:
                check()
            pruned = []
            for alias, record in sorted(records.items()):
                if record is not None and version in record.previous:
                    kept = [v for v in record.previous if v != version]
                    # The same updated_at: pruning history is not a promotion (servers
                    # take a new updated_at as "load this version again").
                    body = replace(record, previous=kept).to_json()
                    self.backend.replace(f"{model}/{ALIASES}/{alias}.json", body)
                    pruned.append(alias)
            try:
                self.backend.remove_version(model, version)
            except FileNotFoundError as exc:  # removed by hand since the check
                raise VersionNotFound(f"model {model!r} has no version {version}") from exc
        return pruned

    # -- internals -------------------------------------------------------------------------

    def _version_numbers(self, model: str) -> list[str]:
        names = self.backend.list(f"{model}/{VERSIONS}")
        return sorted((n for n in names if n.isdigit() and not n.startswith("0")), key=int)

    def _require_model(self, model: str) -> list[str]:
        versions = self._version_numbers(model)
        if not versions:
            known = ", ".join(self.list_models()) or "none"
            raise ModelNotFound(
                f"model {model!r} has no versions in {self.backend.location('')} (models: {known})"
            )
        return versions

    def _require_version(self, model: str, version: str) -> None:
        versions = self._require_model(model)
        if version not in versions:
            raise VersionNotFound(
                f"model {model!r} has no version {version} (versions: {', '.join(versions)})"
            )

    def _check_file_set(
        self, manifest: Manifest, prefix: str, where: str, replaced: frozenset[str] = frozenset()
    ) -> None:
        listed = set(manifest.files) - replaced
        # Hidden names are the backend's own (temp files of a write in progress).
        present = {n for n in self.backend.list(prefix) if not n.startswith(".")}
        present -= {MANIFEST_FILE, *replaced}
        problems = [
            f"file {n} is listed in the manifest but missing" for n in sorted(listed - present)
        ]
        problems += [
            f"file {n} is present but not in the manifest" for n in sorted(present - listed)
        ]
        problems += [
            f"required file {n} is not in the manifest" for n in REQUIRED_FILES if n not in listed
        ]
        if problems:
            raise CorruptVersion(f"{where}: " + "; ".join(problems))

    def _verify_in_place(self, prefix: str, name: str, entry: FileEntry) -> str | None:
        """Size and sha256 of a file the backend has on a local path, hashed as a stream;
        the path, or None when the backend has none (then ``_read_verified``).

        The file is then read again by its reader, by path: a version's files are
        never rewritten by the store (a version is published whole, only its index
        and manifest are ever replaced, atomically), so what is read is what was
        checked unless something outside the store writes into a published version.
        """
        key = f"{prefix}/{name}"
        path = self.backend.local_path(key)
        if path is None:
            return None
        where = self.backend.location(key)
        try:
            with open(path, "rb") as handle:
                _check_size(where, os.fstat(handle.fileno()).st_size, entry)
                _check_digest(where, hashlib.file_digest(handle, "sha256").hexdigest(), entry)
        except FileNotFoundError as exc:
            raise CorruptVersion(f"{where} is missing") from exc
        except OSError as exc:
            raise CorruptVersion(f"{where} cannot be read: {exc}") from exc
        return path

    def _read_verified(self, prefix: str, name: str, entry: FileEntry) -> bytes:
        key = f"{prefix}/{name}"
        where = self.backend.location(key)
        try:
            blob = self.backend.read(key)
        except FileNotFoundError as exc:
            raise CorruptVersion(f"{where} is missing") from exc
        except OSError as exc:
            raise CorruptVersion(f"{where} cannot be read: {exc}") from exc
        _check_size(where, len(blob), entry)
        _check_digest(where, hashlib.sha256(blob).hexdigest(), entry)
        return blob

    def _read_alias(self, model: str, alias: str) -> _AliasRecord | None:
        key = f"{model}/{ALIASES}/{alias}.json"
        where = self.backend.location(key)
        try:
            raw = self.backend.read(key)
        except FileNotFoundError:
            return None
        except OSError as exc:  # no permission (promoted under another user's umask), a folder
            raise UnreadableAlias(
                f"alias file {where} cannot be read: {exc.strerror or exc}; make it readable, "
                "or move it away and promote a version",
                where,
            ) from exc
        # A file that parses badly is replaced by an explicit promotion (``promote``'s
        # ``replace_unreadable``); the message says so, to whoever meets it first.
        repair = (
            f"; promoting a version replaces it (`genrec models promote {model} VERSION`, "
            f"POST /admin/models/{model}/promote)"
            if alias == "production"
            else "; move it away and promote a version"
        )
        try:
            body = json.loads(raw)
            record = _AliasRecord(
                version=validate_version(body["version"]),
                previous=[validate_version(v) for v in body["previous"]],
                updated_at=str(body["updated_at"]),
            )
        except KeyError as exc:
            raise UnreadableAlias(
                f"alias file {where} is unreadable: it has no {exc} field{repair}", where, raw
            ) from exc
        except (ValueError, TypeError, StoreError) as exc:
            raise UnreadableAlias(
                f"alias file {where} is unreadable: {exc}{repair}", where, raw
            ) from exc
        return record

    def _write_alias(self, model: str, alias: str, version: str, previous: list[str]) -> None:
        record = _AliasRecord(version, previous[:MAX_ALIAS_HISTORY], utc_now_iso())
        self.backend.replace(f"{model}/{ALIASES}/{alias}.json", record.to_json())


def _is_valid_name(name: str, what: str) -> bool:
    """A folder (``what``: "model name") or file ("alias") the store could have written: a
    stray ``Bad Name.json`` or ``ease (copy)/`` is not one, and is left alone as hidden
    names are. A copied model folder with such a name made every listing of the store
    (``genrec models list``, ``GET /admin/models``) an error about it."""
    try:
        validate_name(name, what)
    except StoreError:
        return False
    return True


def _check_index_items(manifest: Manifest, n_items: int, where: str) -> None:
    """``CorruptVersion`` unless each index's recorded ``n_items`` is the version's item
    count: an index is built over every item of its version (``training.ann``), so any
    other count is a damaged manifest. The rest of the section is checked when the
    manifest is read (``Manifest``); this needs the item ids, read only here."""
    similar = manifest.retrieval.get("similar")
    for what, section in (("retrieval", manifest.retrieval), ("retrieval.similar", similar)):
        recorded = section.get("n_items") if isinstance(section, dict) else None
        if recorded is not None and recorded != n_items:
            raise CorruptVersion(
                f"{where}: the manifest's {what}.n_items is {recorded}, "
                f"but the version has {n_items} items"
            )


def _version_key(model: str, version: str) -> str:
    return f"{model}/{VERSIONS}/{version}"


__all__ = ["LoadedVersion", "ModelStore", "VersionContents"]
