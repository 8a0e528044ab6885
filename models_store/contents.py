"""The data of one version and its on-disk encoding (safetensors + JSON, never pickle).

Kept apart from ``store.py`` so the byte format sits in one place: ``encode``
turns ``VersionContents`` into named files, ``decode`` turns verified files
back, and both apply the same consistency checks (ids unique, history rows
match the id maps), so what was refused on save is refused on load too.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from safetensors import safe_open
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save
from safetensors.numpy import save_file as st_save_file

from models_store.manifest import validate_name

TENSORS_FILE = "tensors.safetensors"
HISTORY_FILE = "history.safetensors"
USER_IDS_FILE = "user_ids.json"
ITEM_IDS_FILE = "item_ids.json"
MANIFEST_FILE = "manifest.json"
REQUIRED_FILES = (TENSORS_FILE, HISTORY_FILE, USER_IDS_FILE, ITEM_IDS_FILE)
RESERVED_FILES = frozenset((*REQUIRED_FILES, MANIFEST_FILE))
HISTORY_KEYS = ("indptr", "indices", "values")
#: Elements ``non_finite`` checks at a time: a 4 MB boolean temporary, whatever the table.
FINITE_CHUNK = 1 << 22


class ContentsError(ValueError):
    """Inconsistent contents; the store re-raises it as InvalidContents or CorruptVersion."""


@dataclass(frozen=True)
class VersionContents:
    """Everything a scorer and the server need from one version, besides the manifest.

    * ``tensors``: the scorer's named arrays (-> ``tensors.safetensors``).
    * ``user_ids`` / ``item_ids``: external id of each dense index (-> JSON).
    * ``history``: the (U, I) training matrix in CSR, keys ``indptr`` (U+1,),
      ``indices`` (nnz,) item indices, ``values`` (nnz,) ratings or 1.0 —
      used for fold-in and seen-item exclusion (-> ``history.safetensors``).
      U = ``len(user_ids)``, indices < ``len(item_ids)``.
    * ``extra``: other named files, e.g. ``items.json`` with titles.
    """

    tensors: dict[str, np.ndarray]
    user_ids: list[str]
    item_ids: list[str]
    history: dict[str, np.ndarray]
    extra: dict[str, bytes] = field(default_factory=dict)


# --------------------------------------------------------------------------- encode


def encode(contents: VersionContents, tensors_path: Path | None = None) -> dict[str, bytes | Path]:
    """File name -> bytes for one version; ``ContentsError`` says what is inconsistent.

    ``tensors_path``: write the tensors file there (safetensors' ``save_file``, which
    streams the arrays to disk) and name it by that path, instead of making it bytes:
    the model's arrays are then never in memory twice (2 GB more at 1,000,000 x 256).
    Everything is checked before it is written; a write the file system refuses (a full
    disk) is an ``OSError``, not a ``ContentsError``.
    """
    if not isinstance(contents, VersionContents):
        raise ContentsError(f"expected VersionContents, got {type(contents).__name__}")
    user_ids = _check_ids(contents.user_ids, "user_ids")
    item_ids = _check_ids(contents.item_ids, "item_ids")
    history = _check_arrays(contents.history, "history")
    if sorted(history) != sorted(HISTORY_KEYS):
        raise ContentsError(f"history must have exactly keys {HISTORY_KEYS}, got {sorted(history)}")
    check_history(history, len(user_ids), len(item_ids))
    tensors = _check_arrays(contents.tensors, "tensors")
    if bad := non_finite(tensors):
        raise ContentsError(f"NaN or infinite values in tensors {', '.join(bad)}")
    extra = _check_extra(contents.extra)
    files: dict[str, bytes | Path] = {
        HISTORY_FILE: _save_arrays(history, "history"),
        USER_IDS_FILE: _ids_json(user_ids),
        ITEM_IDS_FILE: _ids_json(item_ids),
        **extra,
    }
    if tensors_path is None:
        files[TENSORS_FILE] = _save_arrays(tensors, "tensors")
    else:
        _check_storable(tensors, "tensors")
        try:
            st_save_file(tensors, tensors_path)
        except Exception as exc:  # the arrays are storable: what failed is the write
            raise OSError(f"{tensors_path}: the tensors file cannot be written: {exc}") from exc
        files[TENSORS_FILE] = tensors_path
    return files


def _check_ids(ids: object, what: str) -> list[str]:
    if not isinstance(ids, list | tuple) or not all(isinstance(i, str) for i in ids):
        raise ContentsError(f"{what} must be a list of strings")
    if len(set(ids)) != len(ids):
        dup = next(i for i, n in Counter(ids).items() if n > 1)
        raise ContentsError(f"{what} has duplicate id {dup!r}; each index needs a unique id")
    return list(ids)


def _check_arrays(arrays: object, what: str) -> dict[str, np.ndarray]:
    if not isinstance(arrays, Mapping):
        raise ContentsError(f"{what} must be a dict of numpy arrays")
    out: dict[str, np.ndarray] = {}
    for name, array in arrays.items():
        if not isinstance(name, str) or not name:
            raise ContentsError(f"{what}: array name {name!r} must be a non-empty string")
        if not isinstance(array, np.ndarray):
            raise ContentsError(
                f"{what}[{name!r}] is a {type(array).__name__}, not a numpy array "
                "(convert torch tensors with .detach().cpu().numpy())"
            )
        if array.dtype.hasobject:
            raise ContentsError(
                f"{what}[{name!r}] has object dtype; only numeric arrays are stored"
            )
        out[name] = np.ascontiguousarray(array)
    return out


def non_finite(arrays: Mapping[str, np.ndarray]) -> list[str]:
    """Names of the floating-point arrays that hold a NaN or an infinity, sorted.

    The one rule for a version's weights: training refuses to save them
    (``training.pipeline.refuse_non_finite``), ``encode`` refuses to store them and
    ``decode`` refuses them on every load, so ``promote``, ``rollback``, ``genrec
    evaluate NAME@VERSION`` and a server's load refuse the same versions. Before, only
    the server's smoke test refused them, and only when the one folded-in user it
    scores touched them: promote accepted a version the server then refused, and a
    NaN in a user's row was served (that user's scores were NaN).

    Cost: one pass over arrays the load has just read and hashed, a chunk at a time,
    so no temporary grows with the table (``np.isfinite`` over a whole array allocates
    a byte per element). ``benchmarks/non_finite_check.py`` (docs/internals.md): on
    1,000,000 x 256 float32, 1 GB, 0.05-0.10 s against 0.57 s for its sha256.
    """
    bad = []
    for name, array in arrays.items():
        if not np.issubdtype(array.dtype, np.floating):
            continue
        flat = array.reshape(-1)
        chunks = range(0, flat.size, FINITE_CHUNK)
        if not all(np.isfinite(flat[start : start + FINITE_CHUNK]).all() for start in chunks):
            bad.append(name)
    return sorted(bad)


def _check_storable(arrays: dict[str, np.ndarray], what: str) -> None:
    """Refuse dtypes safetensors cannot store before the file is written, by serialising
    an empty array of each (its own check, a few bytes each).

    Why: the write to the file raises safetensors' one error type for an unknown dtype
    and for the file system's failures alike, and a full disk was reported as
    ``InvalidContents``, the caller's mistake; this check leaves the write only the
    file system's failures, which ``encode`` raises as ``OSError``.
    """
    _save_arrays({name: np.empty(0, dtype=a.dtype) for name, a in arrays.items()}, what)


def _save_arrays(arrays: dict[str, np.ndarray], what: str) -> bytes:
    try:
        return st_save(arrays)
    except Exception as exc:  # safetensors raises its own types for unsupported dtypes
        raise ContentsError(f"{what} cannot be written as safetensors: {exc}") from exc


def _ids_json(ids: list[str]) -> bytes:
    return json.dumps(ids, ensure_ascii=False).encode("utf-8")


def _check_extra(extra: object) -> dict[str, bytes]:
    if not isinstance(extra, Mapping):
        raise ContentsError("extra must be a dict of file name -> bytes")
    out: dict[str, bytes] = {}
    for name, data in extra.items():
        validate_name(name, "extra file name")
        if name in RESERVED_FILES:
            raise ContentsError(f"extra file name {name!r} is reserved for the store's own files")
        if not isinstance(data, bytes | bytearray):
            raise ContentsError(f"extra[{name!r}] must be bytes, got {type(data).__name__}")
        out[name] = bytes(data)
    return out


def history_matrix(history: Mapping[str, np.ndarray], n_items: int) -> sp.csr_matrix:
    """A version's ``history`` arrays as the (U, I) CSR matrix they describe (float32
    values, int64 indices): what serving folds users in from and what the index
    calibration samples users of."""
    indptr = np.asarray(history["indptr"], dtype=np.int64)
    return sp.csr_matrix(
        (
            np.asarray(history["values"], dtype=np.float32),
            np.asarray(history["indices"], dtype=np.int64),
            indptr,
        ),
        shape=(len(indptr) - 1, n_items),
    )


def check_history(history: Mapping[str, np.ndarray], n_users: int, n_items: int) -> None:
    """CSR consistency: (U+1,) non-decreasing indptr from 0 to nnz; indices in [0, I)."""
    indptr, indices, values = (history[k] for k in HISTORY_KEYS)
    for name, array in zip(HISTORY_KEYS, (indptr, indices, values), strict=True):
        if array.ndim != 1:
            raise ContentsError(f"history {name} must be 1-D, got shape {array.shape}")
    for name, array in (("indptr", indptr), ("indices", indices)):
        if not np.issubdtype(array.dtype, np.integer):
            raise ContentsError(f"history {name} must be integer, got {array.dtype}")
    if indptr.shape[0] != n_users + 1:
        raise ContentsError(
            f"history indptr has {indptr.shape[0]} entries; expected len(user_ids) + 1 = {n_users + 1}"
        )
    if indptr[0] != 0 or np.any(np.diff(indptr) < 0) or indptr[-1] != indices.shape[0]:
        raise ContentsError("history indptr must start at 0, never decrease, and end at nnz")
    if values.shape != indices.shape:
        raise ContentsError(
            f"history values {values.shape} and indices {indices.shape} differ in length"
        )
    if indices.size and (indices.min() < 0 or indices.max() >= n_items):
        raise ContentsError(f"history indices must lie in [0, {n_items}) (len(item_ids))")


# --------------------------------------------------------------------------- decode


def decode(
    files: Mapping[str, bytes],
    tensors_path: str | None = None,
    *,
    tensors: Collection[str] | None = None,
) -> VersionContents:
    """Verified file bytes -> ``VersionContents``; ``ContentsError`` names the bad file.

    ``tensors_path``: the verified tensors file, read from its path instead of
    from ``files`` (``ModelStore.load`` on a local directory: the file's bytes
    and the arrays decoded from them are then never in memory together).
    ``tensors``: read only these arrays (each must be in the file).
    """
    if tensors_path is not None:
        arrays = _load_array_file(tensors_path, TENSORS_FILE, tensors)
    else:
        arrays = _select(_load_arrays(files[TENSORS_FILE], TENSORS_FILE), TENSORS_FILE, tensors)
    if bad := non_finite(arrays):
        raise ContentsError(
            f"{TENSORS_FILE}: NaN or infinite values in {', '.join(bad)}; "
            "no model can score with them"
        )
    history = _load_arrays(files[HISTORY_FILE], HISTORY_FILE)
    if sorted(history) != sorted(HISTORY_KEYS):
        raise ContentsError(f"{HISTORY_FILE} holds {sorted(history)}, expected {HISTORY_KEYS}")
    user_ids = _load_ids(files[USER_IDS_FILE], USER_IDS_FILE)
    item_ids = _load_ids(files[ITEM_IDS_FILE], ITEM_IDS_FILE)
    try:
        check_history(history, len(user_ids), len(item_ids))
    except ContentsError as exc:
        raise ContentsError(f"{HISTORY_FILE}: {exc}") from exc
    extra = {name: data for name, data in files.items() if name not in RESERVED_FILES}
    return VersionContents(arrays, user_ids, item_ids, history, extra)


def _load_arrays(data: bytes, name: str) -> dict[str, np.ndarray]:
    try:
        return st_load(data)
    except Exception as exc:  # SafetensorError is not importable from a stable path
        raise ContentsError(f"{name} is not a readable safetensors file: {exc}") from exc


def _select(
    arrays: dict[str, np.ndarray], name: str, keys: Collection[str] | None
) -> dict[str, np.ndarray]:
    """``arrays`` restricted to ``keys`` (all when None); ``ContentsError`` for a key not there."""
    if keys is None:
        return arrays
    missing = sorted(set(keys) - set(arrays))
    if missing:
        raise ContentsError(f"{name} holds no {', '.join(missing)}")
    return {key: arrays[key] for key in keys}


def _load_array_file(
    path: str, name: str, only: Collection[str] | None = None
) -> dict[str, np.ndarray]:
    """The arrays of a safetensors file (``only`` these, when given), each copied out of a
    mapping of its own.

    Why not ``load_file``: it maps the whole file once and copies every array out of
    it, so at the end the process holds the arrays *and* every page of the mapped file
    (a 2 GB tensors file at 1,000,000 items: max RSS 4.18 GiB after ``ModelStore.load``).
    Mapping it again per array and closing the mapping after the copy keeps at most
    one array's pages mapped beside the copies (3.22 GiB; docs/performance.md, "A
    server's start-up memory", ``anon_peak.py``). Mapped pages are clean page cache,
    but they count in the working set a container's limit and a Kubernetes eviction read.
    """
    try:
        with safe_open(path, framework="np") as handle:
            keys = list(handle.keys())
        if only is not None:
            keys = [key for key in keys if key in only]
        arrays = {}
        for key in keys:
            with safe_open(path, framework="np") as handle:
                arrays[key] = handle.get_tensor(key)
    except Exception as exc:  # SafetensorError is not importable from a stable path
        raise ContentsError(f"{name} is not a readable safetensors file: {exc}") from exc
    return arrays if only is None else _select(arrays, name, only)


def load_ids(data: bytes, name: str) -> list[str]:
    """The external ids of a ``user_ids.json`` or ``item_ids.json`` (checked as ``decode``
    checks them), for a reader that needs one id file and not the version's arrays."""
    return _load_ids(data, name)


def _load_ids(data: bytes, name: str) -> list[str]:
    try:
        ids = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ContentsError(f"{name} is not valid JSON: {exc}") from exc
    try:
        return _check_ids(ids, name)
    except ContentsError as exc:
        raise ContentsError(f"{name}: {exc}") from exc


__all__ = [
    "HISTORY_FILE",
    "ITEM_IDS_FILE",
    "MANIFEST_FILE",
    "REQUIRED_FILES",
    "TENSORS_FILE",
    "USER_IDS_FILE",
    "VersionContents",
    "check_history",
    "decode",
    "encode",
    "load_ids",
    "non_finite",
]
