"""A version's retrieval index file: checksummed like every file, mapped rather than held,
added to an existing version without changing anything it held, recorded in the manifest."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from store_helpers import build_contents, save_kwargs

from models_store import ModelStore
from models_store.errors import CorruptVersion, InvalidContents

INDEX = b"not a real index, only bytes the store checksums"
PARAMS = {"file": "items.faiss", "kind": "ivf-flat", "nlist": 4, "nprobe": 2}


def _save_with_index(store: ModelStore) -> str:
    contents = build_contents()
    contents.extra["items.faiss"] = INDEX
    return store.save("mult-vae", contents, **save_kwargs(), retrieval=PARAMS).version


def test_index_is_checksummed_recorded_and_mapped_not_held(
    store: ModelStore, store_root: Path
) -> None:
    version = _save_with_index(store)
    loaded = store.load("mult-vae", version)
    assert loaded.manifest.retrieval == PARAMS
    entry = loaded.manifest.files["items.faiss"]
    assert entry["sha256"] == hashlib.sha256(INDEX).hexdigest()
    assert "items.faiss" not in loaded.contents.extra
    assert Path(loaded.mapped["items.faiss"]).read_bytes() == INDEX


def test_a_tampered_index_refuses_the_version(store: ModelStore, store_root: Path) -> None:
    version = _save_with_index(store)
    (store_root / "mult-vae" / "versions" / version / "items.faiss").write_bytes(b"x" * len(INDEX))
    with pytest.raises(CorruptVersion, match=r"items\.faiss sha256"):
        store.load("mult-vae", version)


def test_retrieval_must_name_a_file_of_the_version(store: ModelStore) -> None:
    with pytest.raises(InvalidContents, match="retrieval names file"):
        store.save("mult-vae", build_contents(), **save_kwargs(), retrieval=PARAMS)


def test_an_index_is_added_to_an_existing_version(store: ModelStore, store_root: Path) -> None:
    version = store.save("mult-vae", build_contents(), **save_kwargs()).version
    before = store.load("mult-vae", version)
    assert before.manifest.retrieval == {} and before.mapped == {}
    manifest_file = store_root / "mult-vae" / "versions" / version / "manifest.json"
    assert "retrieval" not in json.loads(manifest_file.read_text())  # older manifests lack it

    store.add_retrieval_index("mult-vae", version, {"items.faiss": INDEX}, PARAMS)
    after = store.load("mult-vae", version)
    assert after.manifest.retrieval == PARAMS
    assert after.manifest.files["items.faiss"]["bytes"] == len(INDEX)
    for name, entry in before.manifest.files.items():  # nothing it held changed
        assert after.manifest.files[name] == entry
    assert after.contents.tensors.keys() == before.contents.tensors.keys()

    store.add_retrieval_index(
        "mult-vae", version, {"items.faiss": INDEX + b"!"}, PARAMS
    )  # a rebuild replaces it
    assert Path(store.load("mult-vae", version).mapped["items.faiss"]).read_bytes() == INDEX + b"!"


def test_the_index_cannot_overwrite_another_file(store: ModelStore) -> None:
    version = store.save("mult-vae", build_contents(), **save_kwargs()).version
    with pytest.raises(InvalidContents, match="already has a file"):
        store.add_retrieval_index(
            "mult-vae", version, {"items.json": INDEX}, {**PARAMS, "file": "items.json"}
        )
    with pytest.raises(InvalidContents, match="reserved"):
        store.add_retrieval_index(
            "mult-vae",
            version,
            {"tensors.safetensors": INDEX},
            {**PARAMS, "file": "tensors.safetensors"},
        )


@pytest.mark.parametrize("damage", ["tampered", "missing", "extra"])
def test_an_index_is_not_added_to_a_version_that_does_not_verify(
    store: ModelStore, store_root: Path, damage: str
) -> None:
    # ``add_retrieval_index`` checks the files (``verify``) without decoding them.
    version = store.save("mult-vae", build_contents(), **save_kwargs()).version
    folder = store_root / "mult-vae" / "versions" / version
    tensors = folder / "tensors.safetensors"
    if damage == "tampered":
        tensors.write_bytes(b"x" * tensors.stat().st_size)
    elif damage == "missing":
        tensors.unlink()
    else:
        (folder / "stray.bin").write_bytes(b"?")
    with pytest.raises(CorruptVersion):
        store.verify("mult-vae", version)
    with pytest.raises(CorruptVersion):
        store.add_retrieval_index("mult-vae", version, {"items.faiss": INDEX}, PARAMS)
    assert "items.faiss" not in json.loads((folder / "manifest.json").read_text())["files"]


SIMILAR = b"the similar-items index's bytes"
BOTH = {**PARAMS, "similar": {"file": "similar.faiss", "kind": "ivf-flat", "nlist": 4}}


def test_the_similar_items_index_is_a_second_mapped_file(
    store: ModelStore, store_root: Path
) -> None:
    """Saved with the version or added later, each index is checksummed, listed and mapped."""
    contents = build_contents()
    contents.extra.update({"items.faiss": INDEX, "similar.faiss": SIMILAR})
    saved = store.save("mult-vae", contents, **save_kwargs(), retrieval=BOTH).version
    loaded = store.load("mult-vae", saved)
    assert loaded.manifest.mapped_files() == ["items.faiss", "similar.faiss"]
    assert {n: Path(p).read_bytes() for n, p in loaded.mapped.items()} == {
        "items.faiss": INDEX,
        "similar.faiss": SIMILAR,
    }
    assert not {"items.faiss", "similar.faiss"} & loaded.contents.extra.keys()
    (store_root / "mult-vae" / "versions" / saved / "similar.faiss").write_bytes(
        b"y" * len(SIMILAR)
    )
    with pytest.raises(CorruptVersion, match=r"similar\.faiss sha256"):
        store.load("mult-vae", saved)

    older = store.save("mult-vae", build_contents(), **save_kwargs()).version
    store.add_retrieval_index("mult-vae", older, {"items.faiss": INDEX}, PARAMS)
    files = {"items.faiss": INDEX, "similar.faiss": SIMILAR}
    store.add_retrieval_index("mult-vae", older, files, BOTH)  # a rebuild adds the second
    assert store.load("mult-vae", older).manifest.files["similar.faiss"]["bytes"] == len(SIMILAR)


def test_the_files_given_must_be_those_the_section_names(
    store: ModelStore, store_root: Path
) -> None:
    version = store.save("mult-vae", build_contents(), **save_kwargs()).version
    with pytest.raises(InvalidContents, match=r"retrieval names file 'similar\.faiss'"):
        store.add_retrieval_index("mult-vae", version, {"items.faiss": INDEX}, BOTH)
    with pytest.raises(InvalidContents, match="retrieval names the files"):
        store.add_retrieval_index(
            "mult-vae", version, {"items.faiss": INDEX, "similar.faiss": SIMILAR}, PARAMS
        )
    with pytest.raises(InvalidContents, match="retrieval names file"):
        store.save("mult-vae", build_contents(), **save_kwargs(), retrieval=BOTH)
    store.add_retrieval_index(
        "mult-vae", version, {"items.faiss": INDEX, "similar.faiss": SIMILAR}, BOTH
    )
    # A rebuild that keeps no similar-items index deletes the old file once the manifest
    # no longer lists it: the version verifies and loads with the one index.
    store.add_retrieval_index("mult-vae", version, {"items.faiss": INDEX}, PARAMS)
    assert not (store_root / "mult-vae" / "versions" / version / "similar.faiss").exists()
    loaded = store.load("mult-vae", version)
    assert loaded.manifest.mapped_files() == ["items.faiss"]
    assert "similar.faiss" not in loaded.manifest.files


def _interrupt(store: ModelStore, monkeypatch: pytest.MonkeyPatch, method: str, key: str) -> None:
    """Make the backend's ``method`` stop the process (Ctrl-C) when it reaches ``key``."""
    original = getattr(store.backend, method)

    def interrupted(target: str, *args: object) -> None:
        if target.endswith(key):
            raise KeyboardInterrupt
        original(target, *args)

    monkeypatch.setattr(store.backend, method, interrupted)


def test_an_interrupted_rebuild_is_repaired_by_running_it_again(
    store: ModelStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ctrl-C after both new index files replaced the old ones, before the manifest
    # listed their checksums: the version is refused (servers must not map files the
    # manifest does not vouch for), and the same rebuild run again repairs it.
    version = store.save("mult-vae", build_contents(), **save_kwargs()).version
    store.add_retrieval_index(
        "mult-vae", version, {"items.faiss": INDEX, "similar.faiss": SIMILAR}, BOTH
    )
    rebuilt = {"items.faiss": b"a rebuilt index", "similar.faiss": b"a rebuilt similar index"}
    with monkeypatch.context() as patch:
        _interrupt(store, patch, "replace", "manifest.json")
        with pytest.raises(KeyboardInterrupt):
            store.add_retrieval_index("mult-vae", version, rebuilt, BOTH)
    with pytest.raises(CorruptVersion, match=r"items\.faiss has \d+ bytes"):
        store.load("mult-vae", version)
    store.add_retrieval_index("mult-vae", version, rebuilt, BOTH)
    loaded = store.load("mult-vae", version)
    assert {n: Path(p).read_bytes() for n, p in loaded.mapped.items()} == rebuilt


def test_an_index_file_left_by_an_interrupted_rebuild_is_deleted_by_the_next(
    store: ModelStore, store_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A rebuild that keeps no similar-items index, stopped after the manifest stopped
    # listing the old file and before it was deleted: the file is unlisted, the version
    # refused. A rebuild that knows the name of its index files deletes the leftover.
    version = store.save("mult-vae", build_contents(), **save_kwargs()).version
    store.add_retrieval_index(
        "mult-vae", version, {"items.faiss": INDEX, "similar.faiss": SIMILAR}, BOTH
    )
    with monkeypatch.context() as patch:
        _interrupt(store, patch, "remove", "similar.faiss")
        with pytest.raises(KeyboardInterrupt):
            store.add_retrieval_index("mult-vae", version, {"items.faiss": INDEX}, PARAMS)
    with pytest.raises(CorruptVersion, match=r"similar\.faiss is present but not in the manifest"):
        store.load("mult-vae", version)
    with pytest.raises(CorruptVersion, match="not in the manifest"):  # a name it cannot know
        store.add_retrieval_index("mult-vae", version, {"items.faiss": INDEX}, PARAMS)
    names = ("items.faiss", "similar.faiss")
    store.add_retrieval_index(
        "mult-vae", version, {"items.faiss": INDEX}, PARAMS, index_names=names
    )
    assert set(store.load("mult-vae", version).mapped) == {"items.faiss"}
    assert not (store_root / "mult-vae" / "versions" / version / "similar.faiss").exists()


def test_an_index_rebuild_still_verifies_every_other_file(
    store: ModelStore, store_root: Path
) -> None:
    version = _save_with_index(store)
    tensors = store_root / "mult-vae" / "versions" / version / "tensors.safetensors"
    tensors.write_bytes(b"x" * tensors.stat().st_size)
    with pytest.raises(CorruptVersion, match="tensors"):
        store.add_retrieval_index("mult-vae", version, {"items.faiss": INDEX}, PARAMS)
    with pytest.raises(InvalidContents, match="already has a file"):
        store.add_retrieval_index(
            "mult-vae", version, {"items.faiss": INDEX}, PARAMS, index_names=["items.json"]
        )


def test_an_index_given_by_path_is_hashed_and_moved_from_the_scratch_directory(
    store: ModelStore, store_root: Path
) -> None:
    # genrec models index writes each index to a file and hands over the path: the
    # store never holds a gigabyte index as bytes.
    version = store.save("mult-vae", build_contents(), **save_kwargs()).version
    with store.scratch("mult-vae") as scratch:
        assert scratch.parent == store_root / "mult-vae" and scratch.name.startswith(".")
        (scratch / "items.faiss").write_bytes(INDEX)
        (scratch / "similar.faiss").write_bytes(SIMILAR)
        files = {"items.faiss": scratch / "items.faiss", "similar.faiss": scratch / "similar.faiss"}
        manifest = store.add_retrieval_index("mult-vae", version, files, BOTH)
        assert not (scratch / "items.faiss").exists()  # moved, not copied
    assert not scratch.exists()
    assert manifest.files["items.faiss"]["sha256"] == hashlib.sha256(INDEX).hexdigest()
    assert manifest.files["similar.faiss"]["bytes"] == len(SIMILAR)
    loaded = store.load("mult-vae", version)
    assert {n: Path(p).read_bytes() for n, p in loaded.mapped.items()} == {
        "items.faiss": INDEX,
        "similar.faiss": SIMILAR,
    }


def test_an_index_that_does_not_cover_the_version_s_items_refuses_it(
    store: ModelStore, store_root: Path
) -> None:
    """An index is built over every item of its version; another count in the manifest
    (checked on load, where the item ids are read) means the manifest is damaged."""
    contents = build_contents()
    contents.extra["items.faiss"] = INDEX
    version = store.save(
        "mult-vae", contents, **save_kwargs(), retrieval={**PARAMS, "n_items": 7}
    ).version
    store.promote("mult-vae", version)
    path = store_root / "mult-vae" / "versions" / version / "manifest.json"
    body = json.loads(path.read_text())
    body["retrieval"]["n_items"] = 5
    path.write_text(json.dumps(body))
    message = r"retrieval\.n_items is 5, but the version has 7 items"
    with pytest.raises(CorruptVersion, match=message):
        store.promote("mult-vae", version)
    with pytest.raises(CorruptVersion, match=message):
        store.load("mult-vae", version)


def test_a_damaged_retrieval_section_is_listed_as_unreadable_and_not_promoted(
    store: ModelStore, store_root: Path
) -> None:
    first, second = _save_with_index(store), _save_with_index(store)
    store.promote("mult-vae", first)
    path = store_root / "mult-vae" / "versions" / second / "manifest.json"
    body = json.loads(path.read_text())
    body["retrieval"]["nlist"] = -3
    path.write_text(json.dumps(body))
    with pytest.raises(CorruptVersion, match=r"retrieval\.nlist must be a positive integer"):
        store.promote("mult-vae", second)
    assert store.alias_state("mult-vae") == first
    readable, unreadable = store.version_listing("mult-vae")
    assert [m.version for m in readable] == [first]
    assert "retrieval.nlist must be a positive integer, got -3" in unreadable[second]
