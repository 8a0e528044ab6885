"""Contents encoding: what the store refuses to save, and why (before writing anything)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from safetensors import SafetensorError
from store_helpers import build_contents, save_kwargs

import models_store.contents as contents_module
from models_store import InvalidContents, InvalidName, ModelStore
from models_store.contents import ContentsError, decode, encode


def _with(**changes: object):  # -> VersionContents
    return dataclasses.replace(build_contents(), **changes)  # type: ignore[arg-type]


def _history(**changes: object) -> dict[str, np.ndarray]:
    history = dict(build_contents().history)
    history.update(changes)  # type: ignore[arg-type]
    return history


@pytest.mark.parametrize(
    ("contents", "message"),
    [
        (_with(user_ids=["a", "b", "a", "c", "d"]), "user_ids has duplicate id 'a'"),
        (_with(item_ids=[1, 2, 3]), "item_ids must be a list of strings"),
        (_with(tensors={"w": [1.0, 2.0]}), r"tensors\['w'\] is a list, not a numpy array"),
        (_with(tensors={"w": np.array([None])}), "object dtype"),
        (_with(history=_history(indptr=np.array([0, 1]))), "expected len\\(user_ids\\) \\+ 1"),
        (_with(history=_history(indices=np.array([99] * 1))), "end at nnz|differ in length"),
        (
            _with(history={k: v for k, v in build_contents().history.items() if k != "values"}),
            "exactly keys",
        ),
        (
            _with(tensors={"w": np.array([1.0, np.nan], dtype=np.float32)}),
            "NaN or infinite values in tensors w",
        ),
        (_with(tensors={"w": np.array([np.inf]), "v": np.ones(2)}), "in tensors w"),
        (_with(extra={"manifest.json": b"{}"}), "reserved"),
        (_with(extra={"notes.txt": "text"}), "must be bytes"),
    ],
)
def test_inconsistent_contents_are_refused(contents: object, message: str) -> None:
    with pytest.raises(ContentsError, match=message):
        encode(contents)  # type: ignore[arg-type]


def test_non_finite_checks_every_chunk_of_every_float_array(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from models_store import contents

    monkeypatch.setattr(contents, "FINITE_CHUNK", 4)  # the NaN sits in the third chunk
    late = np.zeros((3, 3), dtype=np.float16)
    late[2, 2] = np.nan
    arrays = {"late": late, "ids": np.arange(10), "fine": np.ones(9), "z": np.array([-np.inf])}
    assert contents.non_finite(arrays) == ["late", "z"]


def test_history_indices_must_fit_the_item_ids() -> None:
    history = _history()
    history["indices"] = history["indices"].copy()
    history["indices"][0] = 7  # == len(item_ids)
    with pytest.raises(ContentsError, match=r"must lie in \[0, 7\)"):
        encode(_with(history=history))


def test_extra_names_are_path_safe() -> None:
    with pytest.raises(InvalidName, match=r"invalid extra file name '\.\./evil'"):
        encode(_with(extra={"../evil": b""}))


def test_encode_then_decode_is_identity() -> None:
    contents = build_contents(seed=3)
    again = decode(encode(contents))
    assert again.user_ids == contents.user_ids
    assert again.item_ids == contents.item_ids
    assert again.extra == contents.extra
    for name, array in {**contents.tensors, **contents.history}.items():
        back = again.tensors.get(name, again.history.get(name))
        assert back is not None and back.dtype == array.dtype
        np.testing.assert_array_equal(back, array)


def test_store_save_reports_invalid_contents_and_writes_nothing(
    store: ModelStore, store_root: Path
) -> None:
    with pytest.raises(InvalidContents, match="cannot save 'mult-vae': user_ids has duplicate"):
        store.save("mult-vae", _with(user_ids=["a"] * 5), **save_kwargs())
    with pytest.raises(InvalidContents, match="not a finite number"):
        store.save("mult-vae", build_contents(), **save_kwargs(metrics={"ndcg": float("inf")}))
    assert not store_root.exists() or not any(store_root.rglob("*.safetensors"))


def test_a_dtype_safetensors_cannot_store_is_refused_before_the_tensors_file_is_written(
    store: ModelStore, store_root: Path
) -> None:
    with pytest.raises(InvalidContents, match=r"tensors cannot be written as safetensors.*str"):
        store.save("mult-vae", _with(tensors={"w": np.array(["abc"])}), **save_kwargs())
    assert not store_root.exists() or not any(store_root.rglob("*.safetensors"))


def test_a_tensors_file_the_disk_refuses_is_an_os_error_not_invalid_contents(
    store: ModelStore, saved: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk (a retrain job's store, found by hand on a tiny tmpfs) failed the save
    as ``InvalidContents``, the error of contents the caller got wrong, so the job read as
    one that had trained something unstorable. It is the file system's failure: an
    ``OSError``, as the store's other writes raise, and nothing is published."""
    before = saved()

    def disk_full(_tensors: object, _path: object) -> None:
        raise SafetensorError("Error while serializing: I/O error: No space left on device")

    monkeypatch.setattr(contents_module, "st_save_file", disk_full)
    with pytest.raises(OSError, match="No space left on device") as raised:
        store.save("mult-vae", build_contents(1), **save_kwargs())
    assert not isinstance(raised.value, InvalidContents)
    assert [m.version for m in store.list_versions("mult-vae")] == [before]
