"""ModelStore: round trip, verification on load, listing, aliases, names, no pickle."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from store_helpers import build_contents, build_data_info, save_kwargs

from models_store import (
    AliasChanged,
    AliasNotSet,
    CorruptVersion,
    InvalidContents,
    InvalidName,
    LoadedVersion,
    LocalDirectoryBackend,
    ModelNotFound,
    ModelStore,
    NothingToRollBack,
    StoreError,
    UnknownFormat,
    UnreadableAlias,
    VersionNotFound,
)

Saver = Callable[..., str]


def _version_dir(root: Path, model: str = "mult-vae", version: str = "1") -> Path:
    return root / model / "versions" / version


def _rewrite_manifest(root: Path, change: Callable[[dict], None], version: str = "1") -> None:
    path = _version_dir(root, version=version) / "manifest.json"
    body = json.loads(path.read_text())
    change(body)
    path.write_text(json.dumps(body))


# --------------------------------------------------------------------------- round trip


def test_round_trip_gives_identical_contents(store: ModelStore) -> None:
    contents = build_contents(seed=1)
    manifest = store.save("mult-vae", contents, **save_kwargs())
    loaded = store.load("mult-vae", manifest.version)

    assert isinstance(loaded, LoadedVersion)
    assert loaded.manifest == manifest
    assert loaded.contents.user_ids == contents.user_ids
    assert loaded.contents.item_ids == contents.item_ids
    assert loaded.contents.extra == contents.extra
    for source, target in (
        (contents.tensors, loaded.contents.tensors),
        (contents.history, loaded.contents.history),
    ):
        assert target.keys() == source.keys()
        for name, array in source.items():
            assert target[name].dtype == array.dtype and target[name].shape == array.shape
            np.testing.assert_array_equal(target[name], array)
    assert Path(loaded.path) == _version_dir(Path(store.backend.location("")))


def test_manifest_records_what_was_saved(store: ModelStore, store_root: Path) -> None:
    kwargs = save_kwargs()
    manifest = store.save("mult-vae", build_contents(), **kwargs)

    assert (manifest.model, manifest.version, manifest.format_version) == ("mult-vae", "1", 1)
    assert manifest.created_at.endswith("Z")
    assert manifest.data == build_data_info()
    assert manifest.scorer_config == kwargs["scorer_config"]
    assert manifest.hyper_parameters == kwargs["hyper_parameters"]
    assert manifest.metrics == kwargs["metrics"]
    assert manifest.training == kwargs["training"]
    on_disk = sorted(p.name for p in _version_dir(store_root).iterdir())
    assert sorted([*manifest.files, "manifest.json"]) == on_disk
    for name, entry in manifest.files.items():
        assert entry["bytes"] == (_version_dir(store_root) / name).stat().st_size
    assert store.manifest("mult-vae", 1) == manifest


def test_versions_count_up_and_list_in_order(store: ModelStore, saved: Saver) -> None:
    versions = [saved("mult-vae", seed) for seed in range(11)]
    saved("cf-nade")
    assert versions == [str(n) for n in range(1, 12)]
    assert [m.version for m in store.list_versions("mult-vae")] == versions  # 10 after 9
    assert store.list_models() == ["cf-nade", "mult-vae"]


# --------------------------------------------------------------------------- verification


@pytest.mark.parametrize("local", [True, False])
def test_a_load_can_read_some_tensors_only(store_root: Path, local: bool) -> None:
    # What ``genrec models index`` does: the item table, not the encoder. The whole file
    # is still verified, and a name the file does not hold is an error, not a silent gap.
    backend = LocalDirectoryBackend(store_root) if local else _BytesOnlyBackend(store_root)
    store = ModelStore(backend=backend)
    contents = build_contents(seed=3)
    version = store.save("mult-vae", contents, **save_kwargs()).version
    wanted = sorted(contents.tensors)[:1]
    loaded = store.load("mult-vae", version, tensors=wanted)
    assert sorted(loaded.contents.tensors) == wanted
    np.testing.assert_array_equal(loaded.contents.tensors[wanted[0]], contents.tensors[wanted[0]])
    assert loaded.contents.item_ids == contents.item_ids
    with pytest.raises(CorruptVersion, match="holds no no_such_tensor"):
        store.load("mult-vae", version, tensors=["no_such_tensor"])
    path = _version_dir(store_root, version=version) / "tensors.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptVersion, match=r"tensors\.safetensors sha256"):
        store.load("mult-vae", version, tensors=wanted)


def test_user_ids_reads_one_verified_file(
    store: ModelStore, store_root: Path, saved: Saver
) -> None:
    """Who a version holds, without its arrays (erasure pruning asks it of every version)."""
    contents = build_contents(seed=0)
    saved()
    assert store.user_ids("mult-vae", "1") == contents.user_ids
    path = _version_dir(store_root) / "user_ids.json"
    path.write_text(json.dumps(list(reversed(contents.user_ids))))  # same size, other bytes
    with pytest.raises(CorruptVersion, match=r"user_ids\.json sha256 .* does not match"):
        store.user_ids("mult-vae", "1")
    path.unlink()
    with pytest.raises(CorruptVersion, match=r"user_ids\.json is missing"):
        store.user_ids("mult-vae", "1")


def test_tampered_file_is_corrupt(store: ModelStore, store_root: Path, saved: Saver) -> None:
    saved()
    path = _version_dir(store_root) / "tensors.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # same size, different bytes
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptVersion, match=r"tensors\.safetensors sha256 .* does not match"):
        store.load("mult-vae", "1")


def test_missing_file_is_corrupt(store: ModelStore, store_root: Path, saved: Saver) -> None:
    saved()
    (_version_dir(store_root) / "item_ids.json").unlink()
    with pytest.raises(
        CorruptVersion, match=r"item_ids\.json is listed in the manifest but missing"
    ):
        store.load("mult-vae", "1")


def test_unlisted_extra_file_is_corrupt(store: ModelStore, store_root: Path, saved: Saver) -> None:
    saved()
    (_version_dir(store_root) / "weights.pkl").write_bytes(b"\x80\x04")
    with pytest.raises(CorruptVersion, match=r"weights\.pkl is present but not in the manifest"):
        store.load("mult-vae", "1")


def test_missing_manifest_is_corrupt(store: ModelStore, store_root: Path, saved: Saver) -> None:
    saved()
    (_version_dir(store_root) / "manifest.json").unlink()
    with pytest.raises(CorruptVersion, match=r"manifest\.json is missing"):
        store.load("mult-vae", "1")


def test_unknown_format_version_is_refused(
    store: ModelStore, store_root: Path, saved: Saver
) -> None:
    saved()
    _rewrite_manifest(store_root, lambda body: body.update(format_version=99))
    with pytest.raises(UnknownFormat, match="format_version 99 is not supported"):
        store.load("mult-vae", "1")


@pytest.mark.parametrize("name", ["history.safetensors", "tensors.safetensors"])
def test_truncated_safetensors_is_corrupt_not_a_raw_error(
    store: ModelStore, store_root: Path, saved: Saver, name: str
) -> None:
    # The history is read as bytes; the tensors are hashed as a stream and read in place.
    saved()
    path = _version_dir(store_root) / name
    truncated = path.read_bytes()[:20]
    path.write_bytes(truncated)
    escaped = name.replace(".", r"\.")
    with pytest.raises(CorruptVersion, match=rf"{escaped} has 20 bytes; the manifest says"):
        store.load("mult-vae", "1")

    # Even with a manifest that agrees (written by a broken writer), parsing fails cleanly.
    def agree(body: dict) -> None:
        import hashlib

        body["files"][name] = {
            "sha256": hashlib.sha256(truncated).hexdigest(),
            "bytes": len(truncated),
        }

    _rewrite_manifest(store_root, agree)
    with pytest.raises(CorruptVersion, match=rf"{escaped} is not a readable safetensors"):
        store.load("mult-vae", "1")


def test_manifest_of_another_version_is_corrupt(
    store: ModelStore, store_root: Path, saved: Saver
) -> None:
    saved()
    _rewrite_manifest(store_root, lambda body: body.update(version="7"))
    with pytest.raises(
        CorruptVersion, match="describes 'mult-vae' version 7, not 'mult-vae' version 1"
    ):
        store.load("mult-vae", "1")


def _move_out_and_link(inside: Path, outside: Path) -> None:
    """Move ``inside`` to ``outside`` and leave a link to it where it was."""
    outside.parent.mkdir(parents=True, exist_ok=True)
    inside.rename(outside)
    inside.symlink_to(outside)


def test_a_version_file_that_links_out_of_the_store_is_refused(
    store: ModelStore, store_root: Path, saved: Saver, tmp_path: Path
) -> None:
    """It was followed: its bytes verified, but a file the store does not hold can change
    after that, and a link to /dev/zero or a pipe made the load read or wait forever."""
    saved(), saved()
    outside = tmp_path / "elsewhere"
    _move_out_and_link(_version_dir(store_root) / "item_ids.json", outside / "item_ids.json")
    message = r"versions/1/item_ids\.json resolves to .*elsewhere/item_ids\.json, outside the store"
    with pytest.raises(CorruptVersion, match=message):
        store.promote("mult-vae", "1")
    with pytest.raises(CorruptVersion, match=message):
        store.load("mult-vae", "1")
    assert store.aliases("mult-vae") == {}
    # A whole version folder linked in from outside: listed as unreadable, not promoted.
    _move_out_and_link(_version_dir(store_root, version="2"), outside / "2")
    with pytest.raises(CorruptVersion, match=r"versions/2/manifest\.json resolves to"):
        store.promote("mult-vae", "2")
    readable, unreadable = store.version_listing("mult-vae")
    assert [m.version for m in readable] == ["1"]  # its manifest is in the store
    assert "outside the store" in unreadable["2"]


def test_a_store_or_model_folder_that_is_a_link_is_still_the_store(
    store_root: Path, tmp_path: Path
) -> None:
    """Operators mount or move these: only a version's files leading out are refused."""
    real_root = tmp_path / "volume" / "store"
    real_root.mkdir(parents=True)
    store_root.symlink_to(real_root)
    store = ModelStore(store_root)
    store.save("mult-vae", build_contents(), **save_kwargs())
    store.save("ease", build_contents(), **save_kwargs())
    store.promote("mult-vae", "1")
    _move_out_and_link(real_root / "ease", tmp_path / "other-disk" / "ease")
    store.save("ease", build_contents(), **save_kwargs())
    store.promote("ease", "2")
    # A file linked to the same bytes elsewhere in the store: the store holds it.
    second = real_root / "mult-vae" / "versions" / "2"
    store.save("mult-vae", build_contents(), **save_kwargs())
    (second / "tensors.safetensors").unlink()
    (second / "tensors.safetensors").symlink_to(second.parent / "1" / "tensors.safetensors")
    for model, version in (("mult-vae", "1"), ("mult-vae", "2"), ("ease", "1"), ("ease", "2")):
        assert store.load(model, version).contents.item_ids == build_contents().item_ids


# --------------------------------------------------------------------------- lookups


def test_unknown_model_and_version(store: ModelStore, saved: Saver) -> None:
    with pytest.raises(ModelNotFound, match="model 'nope' has no versions"):
        store.load("nope", "1")
    saved()
    with pytest.raises(
        VersionNotFound, match="model 'mult-vae' has no version 5 \\(versions: 1\\)"
    ):
        store.load("mult-vae", 5)
    with pytest.raises(ModelNotFound):
        store.list_versions("nope")
    with pytest.raises(ModelNotFound):
        store.aliases("nope")


def test_resolve_versions_and_aliases(store: ModelStore, saved: Saver) -> None:
    saved(), saved()
    assert store.resolve("mult-vae", "2") == "2"
    assert store.resolve("mult-vae", 1) == "1"
    with pytest.raises(AliasNotSet, match="alias 'production' of model 'mult-vae' is not set"):
        store.resolve("mult-vae")
    store.promote("mult-vae", "1", alias="staging")
    assert store.resolve("mult-vae", "staging") == "1"
    with pytest.raises(VersionNotFound):
        store.resolve("mult-vae", "3")
    with pytest.raises(ModelNotFound):
        store.resolve("other", "production")


def test_a_lookup_of_an_unknown_model_leaves_nothing_in_the_store(
    store: ModelStore, store_root: Path, saved: Saver
) -> None:
    """A rollback took the model's lock first, which created ``<model>/.lock``: every
    mistyped name left a folder in the store (``genrec models rollback`` and the admin
    API alike)."""
    saved()
    with pytest.raises(ModelNotFound, match="model 'nope' has no versions"):
        store.rollback("nope")
    with pytest.raises(ModelNotFound):
        store.promote("nope", "1")
    assert sorted(p.name for p in store_root.iterdir()) == ["mult-vae"]


def test_a_folder_that_is_not_a_model_name_is_left_out_of_the_models(
    store: ModelStore, store_root: Path, saved: Saver
) -> None:
    """A copy of a model's folder named as no model can be (``mult-vae copy``) made every
    listing of the store an ``InvalidName`` error about it."""
    saved()
    shutil.copytree(store_root / "mult-vae", store_root / "Mult-VAE copy")
    assert store.list_models() == ["mult-vae"]


# --------------------------------------------------------------------------- aliases


def test_an_alias_file_or_folder_that_cannot_be_read_is_a_store_error(
    store: ModelStore, store_root: Path, saved: Saver
) -> None:
    """An OSError (no permission: promoted by another user under umask 077; a folder in
    its place) escaped as such, past every caller's ``StoreError`` handling: the listing
    of every model failed, and a server's reload check logged a traceback."""
    saved()
    (store_root / "mult-vae" / "aliases" / "production.json").mkdir(parents=True)
    with pytest.raises(
        StoreError, match=r"aliases/production\.json cannot be read: Is a directory"
    ):
        store.alias_state("mult-vae")
    aliases = store_root / "mult-vae" / "aliases"
    shutil.rmtree(aliases)
    aliases.symlink_to(aliases)  # a link loop: listing it fails as no permission does
    with pytest.raises(StoreError, match=r"alias folder .*aliases cannot be read"):
        store.aliases("mult-vae")


def test_promote_and_rollback_history(store: ModelStore, store_root: Path, saved: Saver) -> None:
    for seed in range(3):
        saved(seed=seed)
    assert store.alias_state("mult-vae") is None
    for version in ("1", "2", "3"):
        assert store.promote("mult-vae", version).version == version
    store.promote("mult-vae", "3")  # promoting the current version changes nothing
    assert store.aliases("mult-vae") == {"production": "3"}
    record = json.loads((store_root / "mult-vae" / "aliases" / "production.json").read_text())
    assert record["version"] == "3" and record["previous"] == ["2", "1"]
    assert record["updated_at"].endswith("Z")

    assert store.rollback("mult-vae") == "2"
    assert store.alias_state("mult-vae") == "2"
    assert store.rollback("mult-vae") == "1"
    with pytest.raises(NothingToRollBack, match="is at version 1 and has no previous version"):
        store.rollback("mult-vae")
    assert store.alias_state("mult-vae") == "1"
    # versions are never copied or removed by alias moves
    assert sorted(p.name for p in (store_root / "mult-vae" / "versions").iterdir()) == [
        "1",
        "2",
        "3",
    ]


def test_promote_only_from_moves_the_alias_only_from_where_the_caller_found_it(
    store: ModelStore, saved: Saver
) -> None:
    for seed in range(3):
        saved(seed=seed)
    store.promote("mult-vae", "1", only_from=[None])  # unset, as the caller found it
    with pytest.raises(AliasChanged, match="is at version 1, not 2: it moved since"):
        store.promote("mult-vae", "3", only_from=["2"])
    assert store.alias_history("mult-vae") == ["1"]
    store.promote("mult-vae", "3", only_from=["1"])
    store.promote("mult-vae", "3", only_from=["1"])  # already there: a retry is no move
    assert store.alias_history("mult-vae") == ["3", "1"]


def test_aliases_are_independent(store: ModelStore, saved: Saver) -> None:
    saved(), saved()
    store.promote("mult-vae", "1")
    store.promote("mult-vae", "2", alias="canary")
    assert store.aliases("mult-vae") == {"canary": "2", "production": "1"}
    with pytest.raises(NothingToRollBack):
        store.rollback("mult-vae", alias="canary")
    with pytest.raises(AliasNotSet):
        store.rollback("mult-vae", alias="staging")


def test_promoting_unknown_or_corrupt_version_leaves_alias(
    store: ModelStore, store_root: Path, saved: Saver
) -> None:
    saved(), saved()
    store.promote("mult-vae", "1")
    with pytest.raises(VersionNotFound):
        store.promote("mult-vae", "9")
    (_version_dir(store_root, version="2") / "user_ids.json").write_text('["tampered"]')
    with pytest.raises(CorruptVersion):
        store.promote("mult-vae", "2")
    assert store.alias_state("mult-vae") == "1"
    with pytest.raises(NothingToRollBack):
        store.rollback("mult-vae")


def test_rollback_to_a_version_that_no_longer_verifies_is_refused(
    store: ModelStore, store_root: Path, saved: Saver
) -> None:
    saved(), saved()
    store.promote("mult-vae", "1")
    store.promote("mult-vae", "2")
    (_version_dir(store_root, version="1") / "tensors.safetensors").write_bytes(b"garbage")
    with pytest.raises(CorruptVersion, match=r"versions/1/tensors\.safetensors"):
        store.rollback("mult-vae")
    assert store.alias_state("mult-vae") == "2"


def test_a_rollback_to_a_deleted_version_says_it_is_the_rollbacks_target(
    store: ModelStore, store_root: Path, saved: Saver
) -> None:
    """ "model 'mult-vae' has no version 1" was all, in answer to a command naming none."""
    saved(), saved()
    store.promote("mult-vae", "1")
    store.promote("mult-vae", "2")
    shutil.rmtree(_version_dir(store_root, version="1"))
    with pytest.raises(
        VersionNotFound,
        match=r"cannot roll back alias 'production' of model 'mult-vae' from version 2 to "
        r"version 1: model 'mult-vae' has no version 1 \(versions: 2\); promote a version",
    ):
        store.rollback("mult-vae")
    assert store.alias_state("mult-vae") == "2"


def _resign_tensors(root: Path, version: str, change: Callable[[dict], None]) -> None:
    """Rewrite a version's tensors and their checksum in its manifest: what a writer
    without the store's checks (an older genrec, a hand-made version) leaves behind."""
    import hashlib

    from safetensors.numpy import load_file, save_file

    path = _version_dir(root, version=version) / "tensors.safetensors"
    tensors = load_file(path)
    change(tensors)
    save_file(tensors, path)
    blob = path.read_bytes()
    entry = {"sha256": hashlib.sha256(blob).hexdigest(), "bytes": len(blob)}
    _rewrite_manifest(root, lambda body: body["files"].update({path.name: entry}), version)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_version_whose_weights_are_not_finite_is_not_promoted_or_rolled_back_to(
    store: ModelStore, store_root: Path, saved: Saver, value: float
) -> None:
    """Its checksums hold, so promote moved the alias to it; only the server's smoke test
    refused it, and only when the one user it scores touched the weight."""
    saved(), saved(), saved()
    store.promote("mult-vae", "2")
    store.promote("mult-vae", "3")

    def spoil(tensors: dict) -> None:
        tensors["item_bias"][4] = value

    _resign_tensors(store_root, "1", spoil)
    _resign_tensors(store_root, "2", spoil)
    message = r"versions/1: tensors\.safetensors: NaN or infinite values in item_bias"
    with pytest.raises(CorruptVersion, match=message):
        store.promote("mult-vae", "1")
    with pytest.raises(CorruptVersion, match=message.replace("/1", "/2")):
        store.rollback("mult-vae")
    assert store.alias_state("mult-vae") == "3"
    with pytest.raises(CorruptVersion, match=message):
        store.load("mult-vae", "1")


def test_unreadable_alias_file_says_where(
    store: ModelStore, store_root: Path, saved: Saver
) -> None:
    saved()
    store.promote("mult-vae", "1")
    (store_root / "mult-vae" / "aliases" / "production.json").write_text("{oops")
    with pytest.raises(StoreError, match=r"aliases/production\.json is unreadable"):
        store.alias_state("mult-vae")


def test_promote_replaces_an_unreadable_alias_file_only_when_asked(
    store: ModelStore, store_root: Path, saved: Saver
) -> None:
    """A corrupt alias file made every promotion an error, and nothing in the store could
    repair it. Asked to, promote (under the model's lock) replaces it with an alias that
    has no rollback history (the old one cannot be read), keeping the unreadable bytes
    beside it; a gated promotion (``only_from``) still refuses: it cannot know where
    the alias was."""
    saved()
    saved()
    store.promote("mult-vae", "1")
    aliases = store_root / "mult-vae" / "aliases"
    (aliases / "production.json").write_text("{oops")
    with pytest.raises(UnreadableAlias, match=r"aliases/production\.json is unreadable"):
        store.promote("mult-vae", "2")
    with pytest.raises(UnreadableAlias):
        store.promote("mult-vae", "2", only_from=["1"], replace_unreadable=True)
    assert store.promote("mult-vae", "2", replace_unreadable=True).version == "2"
    assert store.alias_history("mult-vae") == ["2"]
    kept = sorted(p.name for p in aliases.iterdir() if p.name != "production.json")
    assert len(kept) == 1 and kept[0].startswith("production.json.unreadable-"), kept
    assert (aliases / kept[0]).read_text() == "{oops"
    assert store.aliases("mult-vae") == {"production": "2"}  # the kept copy is no alias
    with pytest.raises(NothingToRollBack):
        store.rollback("mult-vae")


def test_promote_does_not_replace_an_alias_file_it_cannot_read(
    store: ModelStore, store_root: Path, saved: Saver
) -> None:
    """A file that cannot be read at all (a folder in its place, no permission) is not
    replaced blind: the error names it and says what to do."""
    saved()
    (store_root / "mult-vae" / "aliases" / "production.json").mkdir(parents=True)
    with pytest.raises(UnreadableAlias, match=r"production\.json cannot be read: .*; make it"):
        store.promote("mult-vae", "1", replace_unreadable=True)


def test_a_listing_reports_an_unreadable_version_and_keeps_the_others(
    store: ModelStore, store_root: Path, saved: Saver
) -> None:
    saved()
    saved()
    (_version_dir(store_root, version="1") / "manifest.json").write_text("{oops")
    readable, unreadable = store.version_listing("mult-vae")
    assert [m.version for m in readable] == ["2"]
    assert list(unreadable) == ["1"] and "manifest.json" in unreadable["1"]
    with pytest.raises(StoreError):  # the strict form still refuses
        store.list_versions("mult-vae")


def test_a_stray_file_among_the_aliases_is_not_an_alias(
    store: ModelStore, store_root: Path, saved: Saver
) -> None:
    saved()
    store.promote("mult-vae", "1")
    (store_root / "mult-vae" / "aliases" / "Bad Name.json").write_text("{}")
    assert store.aliases("mult-vae") == {"production": "1"}
    (store_root / "mult-vae" / "aliases" / "staging.json").write_text("{}")
    with pytest.raises(StoreError, match=r"staging\.json is unreadable: it has no 'version' field"):
        store.aliases("mult-vae")


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize("bad", ["../escape", "Mult-VAE", ".hidden", "a/b", ""])
def test_invalid_names_are_refused(store: ModelStore, store_root: Path, bad: str) -> None:
    with pytest.raises(InvalidName):
        store.save(bad, build_contents(), **save_kwargs())
    with pytest.raises(InvalidName):
        store.load(bad, "1")
    store.save("ok", build_contents(), **save_kwargs())
    with pytest.raises(InvalidName):
        store.promote("ok", "1", alias=bad)
    with pytest.raises(InvalidName):
        store.load("ok", bad or "0")
    assert sorted(p.name for p in store_root.iterdir()) == ["ok"]


# --------------------------------------------------------------------------- formats


def _read_safetensors_independently(path: Path) -> dict[str, np.ndarray]:
    """Parse the safetensors layout by hand: u64 header length, JSON header, raw bytes."""
    raw = path.read_bytes()
    (header_len,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + header_len])
    body = raw[8 + header_len :]
    dtypes = {"F32": np.float32, "I64": np.int64}
    arrays = {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        start, end = spec["data_offsets"]
        arrays[name] = np.frombuffer(body[start:end], dtype=dtypes[spec["dtype"]]).reshape(
            spec["shape"]
        )
    return arrays


def test_files_are_safetensors_and_json_never_pickle(store: ModelStore, store_root: Path) -> None:
    contents = build_contents(seed=2)
    store.save("mult-vae", contents, **save_kwargs())
    directory = _version_dir(store_root)
    for path in directory.iterdir():
        assert not path.read_bytes().startswith(b"\x80"), f"{path.name} looks like a pickle"

    tensors = _read_safetensors_independently(directory / "tensors.safetensors")
    history = _read_safetensors_independently(directory / "history.safetensors")
    for name, array in contents.tensors.items():
        np.testing.assert_array_equal(tensors[name], array)
    for name, array in contents.history.items():
        np.testing.assert_array_equal(history[name], array)
    assert json.loads((directory / "user_ids.json").read_text()) == contents.user_ids
    assert json.loads((directory / "item_ids.json").read_text()) == contents.item_ids
    assert json.loads((directory / "manifest.json").read_text())["model"] == "mult-vae"
    assert (directory / "items.json").read_bytes() == contents.extra["items.json"]


def test_package_imports_neither_torch_nor_pickle_users() -> None:
    code = (
        "import sys, models_store; "
        "bad = [m for m in ('torch', 'training', 'app') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --------------------------------------------------------------------------- big files in place


class _BytesOnlyBackend(LocalDirectoryBackend):
    """A backend whose objects have no local file (as on an object store)."""

    def local_path(self, key: str) -> None:  # type: ignore[override]
        return None


def test_a_backend_without_local_files_loads_and_verifies_from_bytes(
    store_root: Path,
) -> None:
    store = ModelStore(backend=_BytesOnlyBackend(store_root))
    contents = build_contents(seed=2)
    version = store.save("mult-vae", contents, **save_kwargs()).version
    loaded = store.load("mult-vae", version)
    for name, array in contents.tensors.items():
        np.testing.assert_array_equal(loaded.contents.tensors[name], array)
    assert store.verify("mult-vae", version).version == version
    path = _version_dir(store_root, version=version) / "tensors.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptVersion, match=r"tensors\.safetensors sha256"):
        store.load("mult-vae", version)
    with pytest.raises(CorruptVersion, match=r"tensors\.safetensors sha256"):
        store.verify("mult-vae", version)


def test_refused_contents_of_a_new_model_leave_the_store_as_it_was(
    store: ModelStore, store_root: Path
) -> None:
    # The tensors file is written to a scratch directory under the model's: a save
    # refused before publishing leaves neither that nor an empty model directory.
    contents = build_contents()
    contents.user_ids.append(contents.user_ids[0])  # a duplicate id
    with pytest.raises(InvalidContents, match="duplicate"):
        store.save("new-model", contents, **save_kwargs())
    assert list(store_root.iterdir()) == []


def test_rollback_from_an_expected_version_moves_once(store: ModelStore, saved: Saver) -> None:
    for seed in range(2):
        saved(seed=seed)
    for version in ("1", "2", "1", "2"):
        store.promote("mult-vae", version)
    assert store.alias_history("mult-vae") == ["2", "1", "2", "1"]
    assert store.rollback("mult-vae", expected="2") == "1"
    with pytest.raises(AliasChanged, match="is at version 1, not 2"):
        store.rollback("mult-vae", expected=2)  # the same request again: nothing moves
    assert store.alias_history("mult-vae") == ["1", "2", "1"]
    assert store.rollback("mult-vae", expected=1) == "2"
    with pytest.raises(InvalidName):
        store.rollback("mult-vae", expected="02")
    assert store.alias_history("other") == []
