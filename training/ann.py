"""Approximate maximum-inner-product index over a scorer's item table (FAISS).

Why: exact ranking costs one (B, D) x (D, I) product and a top-k over all I
items per batch; at a million items that is most of a request. A scorer of
the form ``score = query . row + c_user`` (``InnerProductScorer``) can instead
ask an index for a few hundred candidates and re-score only those exactly.

Which index: IVF-flat with the inner-product metric (``faiss.IndexIVFFlat``),
chosen by measurement (docs/performance.md, "Approximate retrieval"): on a
100,000-item table shaped like a trained one it reached a higher Recall@100
at every speed than HNSW-flat with the inner-product metric, and built several
times faster; its flat codes keep the stored vectors exact, so the file can be
memory-mapped (``IO_FLAG_MMAP_IFC``) and shared by every worker process
through the page cache.

The index is a file of the version (``INDEX_FILE``, FAISS's own
``write_index`` format: no pickle), checksummed by the store like every
other file; its parameters are the manifest's ``retrieval`` section.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import torch

from models_store import Manifest, ModelStore, history_matrix
from training.models import scorer_class, stored_scorer
from training.models.base import History, InnerProductScorer, ModelError, Scorer
from training.overfetch import ANN_CANDIDATES, ANN_MAX_CANDIDATES, candidates_to_fetch

#: The version file holding the index (a name the store accepts).
INDEX_FILE = "items.faiss"
#: The version file holding the similar-items index: the same kind of index over the
#: scorer's item vectors scaled to unit length, where inner product is cosine
#: similarity (``LoadedModel.similar_scores``). Its parameters are ``retrieval["similar"]``.
SIMILAR_FILE = "similar.faiss"
#: Rows normalised at a time (never a float64 or second full copy of a large table).
UNIT_CHUNK_ROWS = 65_536
KIND = "ivf-flat"
METRIC = "inner_product"
#: FAISS warns below 39 training points per list; fewer lists than that for tiny catalogs.
MIN_POINTS_PER_LIST = 39
#: Rows k-means sees per list (a sample: training on all of a million rows buys nothing).
TRAIN_POINTS_PER_LIST = 64
#: Lists searched per query by default: 16, or 1/128 of the lists for large catalogs
#: (measured: Recall@100 0.984 at 100,000 items with 16 of 1,265 lists, 0.941 at
#: 1,000,000 items with 16 of 4,000 and 0.993 with 32; docs/performance.md).
MIN_NPROBE = 16
NPROBE_FRACTION = 128
#: Each index's default breadth is measured on the catalog it indexes (``Calibration``).
#: The similar-items index: an item's nearest neighbours by cosine can be far harder to
#: find than a user's top items by inner product (on the 1,000,000-item synthetic catalog,
#: Recall@100 0.26 with the 32 of 4,000 lists that serve users' lists at 1.0;
#: docs/performance.md, "Similar items on an indexed catalog"), and how hard depends on
#: how clustered the items are. So the build probes 16, 32, 64, ... lists for
#: ``CALIBRATION_QUERIES`` sampled items and keeps the fewest that reach
#: ``SIMILAR_TARGET_RECALL`` of their exact top 100.
#: The retrieval index: the same for up to ``CALIBRATION_QUERIES`` sampled training users
#: of the version, from ``default_nprobe`` up: in a table without structure (independent
#: values: ``serve_bench.py --catalog iid``) the default breadth found a tenth of a user's
#: exact top 100 (16 of 894 lists at 50,000 items), and nothing said so until this
#: (docs/performance.md, "The retrieval index's breadth, measured at build time"). Its
#: recall is of the lists served: each user's seen items masked, the index asked for as
#: many candidates as serving asks (``training.overfetch``).
TARGET_RECALL = 0.95
SIMILAR_TARGET_RECALL = TARGET_RECALL
CALIBRATION_QUERIES = 200
CALIBRATION_K = 100
#: Users whose states are computed at once while calibrating (one sparse history batch).
CALIBRATION_BATCH = 64


class AnnError(ModelError):
    """The index cannot be built or does not match the version it belongs to."""


@dataclass(frozen=True)
class IndexParams:
    """What the manifest records about a version's index (``Manifest.retrieval``)."""

    file: str
    kind: str
    metric: str
    n_items: int
    dims: int
    nlist: int
    nprobe: int  # default search breadth (GENREC_ANN_NPROBE overrides it when serving)
    train_rows: int
    seed: int
    faiss_version: str
    build_seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IndexParams:
        try:
            return cls(**{name: data[name] for name in cls.__dataclass_fields__})
        except (KeyError, TypeError) as exc:
            raise AnnError(f"manifest retrieval section is incomplete: {exc}") from exc


def supports_ann(scorer: Scorer) -> bool:
    """Whether ``scorer`` ranks by an inner product with an item table."""
    return isinstance(scorer, InnerProductScorer)


def item_table(scorer: Scorer) -> np.ndarray:
    """(I, D') float32 C-contiguous rows the index searches."""
    if not isinstance(scorer, InnerProductScorer):
        raise AnnError(f"model '{scorer.name}' is not of inner-product form; it is scored exactly")
    table = scorer.inner_product_table().detach().float().cpu().numpy()
    return np.ascontiguousarray(table, dtype=np.float32)


def default_nlist(n_items: int) -> int:
    """About 4 sqrt(I) lists (FAISS's guideline), fewer when the catalog is tiny."""
    return max(1, min(round(4 * math.sqrt(n_items)), n_items // MIN_POINTS_PER_LIST))


def default_nprobe(nlist: int) -> int:
    """Lists searched per query unless told otherwise (``MIN_NPROBE``, ``NPROBE_FRACTION``)."""
    return min(nlist, max(MIN_NPROBE, math.ceil(nlist / NPROBE_FRACTION)))


@dataclass(frozen=True)
class Rows:
    """An (n, dims) float32 table that an index build reads a chunk at a time.

    Why: a model's inner-product table with a bias column is a new tensor (2.4 GB at
    1,000,000 x 600); read from the scorer a chunk at a time
    (``InnerProductScorer.inner_product_rows``) it is never whole in memory beside the
    model's own tensors and the index's copy.
    """

    n: int
    dims: int
    read: Callable[[int, int], np.ndarray]  # rows start:stop, float32

    @classmethod
    def of(cls, table: np.ndarray) -> Rows:
        return cls(table.shape[0], table.shape[1], lambda start, stop: table[start:stop])

    def chunks(self) -> Iterator[tuple[int, np.ndarray]]:
        """(start, rows) for every ``UNIT_CHUNK_ROWS`` rows, C-contiguous float32."""
        for start in range(0, self.n, UNIT_CHUNK_ROWS):
            rows = self.read(start, min(start + UNIT_CHUNK_ROWS, self.n))
            yield start, np.ascontiguousarray(rows, dtype=np.float32)

    def take(self, indices: np.ndarray) -> np.ndarray:
        """The rows at ascending ``indices``, gathered a chunk at a time."""
        parts = []
        for start, rows in self.chunks():
            low, high = np.searchsorted(indices, [start, start + len(rows)])
            parts.append(rows[indices[low:high] - start])
        return np.concatenate(parts)


def scorer_rows(scorer: Scorer, n_items: int) -> Rows:
    """The scorer's inner-product rows (``inner_product_rows``) as a ``Rows``."""
    if not isinstance(scorer, InnerProductScorer):
        raise AnnError(f"model '{scorer.name}' is not of inner-product form; it is scored exactly")

    def read(start: int, stop: int) -> np.ndarray:
        return scorer.inner_product_rows(start, stop).detach().float().cpu().numpy()

    return Rows(n_items, int(read(0, 1).shape[1]), read)


def build_index(
    table: np.ndarray | Rows,
    *,
    nlist: int | None = None,
    nprobe: int | None = None,
    seed: int = 0,
) -> tuple[faiss.Index, IndexParams]:
    """IVF-flat inner-product index over ``table`` (I, D'), and its parameters; the
    same index whether the table is an array or ``Rows`` read a chunk at a time."""
    rows = table if isinstance(table, Rows) else Rows.of(table)
    n_items, dims = rows.n, rows.dims
    if n_items == 0:
        raise AnnError("cannot index an empty item table")
    nlist = default_nlist(n_items) if nlist is None else nlist
    if not 1 <= nlist <= n_items:
        raise AnnError(f"nlist must be between 1 and the {n_items} items, got {nlist}")
    nprobe = default_nprobe(nlist) if nprobe is None else nprobe
    if not 1 <= nprobe <= nlist:
        raise AnnError(f"nprobe must be between 1 and nlist={nlist}, got {nprobe}")
    started = time.perf_counter()
    quantizer = faiss.IndexFlatIP(dims)
    index = faiss.IndexIVFFlat(quantizer, dims, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed
    rng = np.random.default_rng(seed)
    n_train = min(n_items, nlist * TRAIN_POINTS_PER_LIST)
    # A small catalog has fewer rows than FAISS's k-means asks for per list (39), and FAISS
    # printed "please provide at least 39 training points" at every save, which an operator
    # can do nothing about: every row is already used, and such a catalog is scored exactly.
    index.cp.min_points_per_centroid = min(index.cp.min_points_per_centroid, n_train // nlist)
    if n_train == n_items:
        sample = np.ascontiguousarray(rows.read(0, n_items), dtype=np.float32)
    else:
        sample = rows.take(np.sort(rng.choice(n_items, n_train, False)))
    index.train(sample)
    del sample
    for _, chunk in rows.chunks():
        index.add(chunk)
    if index.ntotal != n_items:
        raise AnnError(f"the table gave {index.ntotal} rows, not its {n_items} items")
    index.nprobe = nprobe
    params = IndexParams(
        file=INDEX_FILE,
        kind=KIND,
        metric=METRIC,
        n_items=n_items,
        dims=dims,
        nlist=nlist,
        nprobe=nprobe,
        train_rows=n_train,
        seed=seed,
        faiss_version=faiss.__version__,
        build_seconds=round(time.perf_counter() - started, 3),
    )
    return index, params


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """(I, d) float32 rows scaled to unit length (a zero row stays zero): cosine
    similarity is their inner product. One float32 copy, normalised a chunk at a time
    (the norms' temporaries stay small)."""
    rows = np.array(vectors, dtype=np.float32, order="C", copy=True)
    for start in range(0, rows.shape[0], UNIT_CHUNK_ROWS):
        chunk = rows[start : start + UNIT_CHUNK_ROWS]
        chunk /= np.maximum(np.linalg.norm(chunk, axis=1, keepdims=True), 1e-12)
    return rows


@dataclass(frozen=True)
class Calibration:
    """How an index's default ``nprobe`` was chosen: the manifest's
    ``retrieval.calibration`` (sampled training users) and
    ``retrieval.similar.calibration`` (sampled items)."""

    target_recall: float
    recall: float  # Recall@k of the chosen nprobe on the sampled queries
    queries: int
    k: int
    tried: dict[int, float]  # nprobe -> Recall@k, every breadth tried
    seconds: float  # the exact neighbours and the searches

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "tried": {str(n): r for n, r in self.tried.items()}}


def exact_neighbours(
    rows: np.ndarray | Rows,
    queries: np.ndarray,
    k: int,
    exclude: Sequence[np.ndarray] | None = None,
) -> np.ndarray:
    """(Q, k) the rows with the largest inner product with each query, best first,
    computed a chunk of rows at a time (never a (Q, I) score table, and for ``Rows`` read
    from the model never the whole table): an item's unit vector against the unit rows,
    or a user's query against the retrieval rows. ``exclude`` (one array of rows per
    query: a user's seen items) are never among them, as serving masks them; a query
    left with fewer than k rows is padded with -1."""
    rows = rows if isinstance(rows, Rows) else Rows.of(rows)
    owners, banned = np.zeros(0, np.int64), np.zeros(0, np.int64)
    if exclude is not None and len(exclude):
        owners = np.repeat(np.arange(len(exclude)), [len(e) for e in exclude])
        banned = np.concatenate([np.asarray(e, dtype=np.int64) for e in exclude])
    best_scores = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_rows = np.zeros((len(queries), 0), dtype=np.int64)
    for start, chunk in rows.chunks():
        scores = queries @ chunk.T  # (Q, chunk)
        inside = (banned >= start) & (banned < start + scores.shape[1])
        scores[owners[inside], banned[inside] - start] = -np.inf
        ids = np.broadcast_to(np.arange(start, start + scores.shape[1]), scores.shape)
        scores = np.concatenate([best_scores, scores], axis=1)
        ids = np.concatenate([best_rows, ids], axis=1)
        width = min(k, scores.shape[1])
        keep = np.argpartition(-scores, width - 1, axis=1)[:, :width]  # O(chunk), unordered
        best_scores = np.take_along_axis(scores, keep, axis=1)
        best_rows = np.take_along_axis(ids, keep, axis=1)
    order = np.argsort(-best_scores, axis=1, kind="stable")
    best_rows = np.take_along_axis(best_rows, order, axis=1)
    best_rows[np.take_along_axis(best_scores, order, axis=1) == -np.inf] = -1  # excluded
    return best_rows


def _calibrate(
    index: faiss.Index,
    asked: np.ndarray,
    exact: np.ndarray,
    *,
    start: int,
    target: float,
    k: int,
    started: float,
    fetch: np.ndarray | None = None,
    masked: Sequence[np.ndarray] | None = None,
) -> tuple[int, Calibration]:
    """The fewest lists (``start``, then doubling, up to all) whose search of ``asked``
    finds ``target`` of ``exact`` (their exact top rows, one row per query, -1 = none).

    Each query's candidates are its first ``fetch`` (default: as many as ``exact`` is
    wide) less its ``masked`` rows, as a served list's are (``training.overfetch``)."""
    ivf = faiss.extract_index_ivf(index)
    fetch = np.full(len(asked), exact.shape[1]) if fetch is None else fetch
    masked = [np.zeros(0, np.int64)] * len(asked) if masked is None else masked
    wanted = [e[e >= 0] for e in exact]
    total = sum(w.size for w in wanted)
    width = int(fetch.max()) if fetch.size else 1
    tried: dict[int, float] = {}
    nprobe = max(1, min(start, ivf.nlist))
    while True:
        ivf.nprobe = nprobe
        # One search as wide as the widest fetch: its first n labels are a search of n's.
        _, found = index.search(asked, width)
        hits = [
            len(np.intersect1d(np.setdiff1d(f[:n], m), w))
            for f, n, m, w in zip(found, fetch, masked, wanted, strict=True)
        ]
        # Nothing left to find (every user has seen every item): nothing missed.
        tried[nprobe] = round(float(np.sum(hits)) / total, 4) if total else 1.0
        if tried[nprobe] >= target or nprobe >= ivf.nlist:
            break
        nprobe = min(nprobe * 2, ivf.nlist)
    seconds = round(time.perf_counter() - started, 3)
    return nprobe, Calibration(target, tried[nprobe], len(asked), k, tried, seconds)


def calibrate_nprobe(
    index: faiss.Index,
    unit: np.ndarray,
    *,
    target: float = SIMILAR_TARGET_RECALL,
    queries: int = CALIBRATION_QUERIES,
    k: int = CALIBRATION_K,
    seed: int = 0,
) -> tuple[int, Calibration]:
    """The similar-items index's breadth: the fewest lists (16, 32, 64, ..., all) whose
    search finds ``target`` of the exact top ``k`` neighbours of ``queries`` items sampled
    from ``unit`` (each item itself included, as a similar list's search finds it), and
    the measurements."""
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    n = unit.shape[0]
    sample = np.sort(rng.choice(n, min(queries, n), replace=False))
    asked = np.ascontiguousarray(unit[sample])
    depth = min(k + 1, n)
    exact = exact_neighbours(unit, asked, depth)
    return _calibrate(
        index, asked, exact, start=MIN_NPROBE, target=target, k=depth - 1, started=started
    )


def calibrate_retrieval_nprobe(
    index: faiss.Index,
    rows: np.ndarray | Rows,
    queries: np.ndarray,
    seen: Sequence[np.ndarray],
    *,
    target: float = TARGET_RECALL,
    k: int = CALIBRATION_K,
    candidates: int = ANN_CANDIDATES,
) -> tuple[int, Calibration]:
    """The retrieval index's breadth: the fewest lists (``default_nprobe``, then doubling,
    up to all) that serve ``target`` of the users' exact top ``k`` (``sample_users``:
    their ``queries`` and ``seen`` items), and the measurements.

    Measured on the lists served: the exact top ``k`` among each user's unseen items
    against the index's ``candidates_to_fetch`` (``candidates`` beyond k, one more per
    seen item) with the seen items removed, as serving masks them. Unmasked, a long
    history's seen items fill the top of the exact list; being the highest-scoring rows
    they are the easiest for the index to find, and the recall overstated the served one.
    """
    started = time.perf_counter()
    asked = np.ascontiguousarray(queries, dtype=np.float32)
    depth = min(k, index.ntotal)
    exact = exact_neighbours(rows, asked, depth, exclude=seen)
    fetch = np.array(
        [min(candidates_to_fetch(depth, candidates, len(s)), index.ntotal) for s in seen],
        dtype=np.int64,
    )
    start = default_nprobe(faiss.extract_index_ivf(index).nlist)
    return _calibrate(
        index,
        asked,
        exact,
        start=start,
        target=target,
        k=depth,
        started=started,
        fetch=fetch,
        masked=seen,
    )


@dataclass(frozen=True)
class SampledUsers:
    """Training users the retrieval index is calibrated on (``sample_users``)."""

    queries: np.ndarray  # (Q, D') float32 inner-product queries
    seen: tuple[np.ndarray, ...]  # per user, the items serving masks (training history)

    def __len__(self) -> int:
        return len(self.seen)


def sample_users(
    scorer: Scorer,
    history: Mapping[str, np.ndarray],
    n_items: int,
    *,
    sample: int = CALIBRATION_QUERIES,
    seed: int = 0,
    max_candidates: int = ANN_MAX_CANDIDATES,
) -> SampledUsers:
    """Up to ``sample`` training users of the version drawn at random among those with a
    history (``history``: the version's CSR arrays) whose lists the index serves, as
    serving sees a user with nothing newer than the version: the inner-product query
    (``user_state`` of the user's training index and stored history, then
    ``inner_product_queries``) and the seen items (the history's row).

    A user whose over-fetch would need more than ``max_candidates``
    (``GENREC_ANN_MAX_CANDIDATES``'s default) is always ranked exactly, whatever the
    breadth, so is not sampled."""
    if not isinstance(scorer, InnerProductScorer):
        raise AnnError(f"model '{scorer.name}' is not of inner-product form; it is scored exactly")
    matrix = history_matrix(history, n_items)
    lengths = np.diff(matrix.indptr)
    needs = candidates_to_fetch(CALIBRATION_K, ANN_CANDIDATES, 0) + lengths
    active = np.flatnonzero((lengths > 0) & (needs <= max_candidates))
    rng = np.random.default_rng(seed)
    users = np.sort(rng.choice(active, min(sample, active.size), replace=False))
    parts = []
    with torch.inference_mode():
        for start in range(0, users.size, CALIBRATION_BATCH):
            batch = users[start : start + CALIBRATION_BATCH]
            rows = History.from_csr(matrix, batch, device=scorer.device)
            state = scorer.user_state(torch.as_tensor(batch, device=scorer.device), rows)
            parts.append(scorer.inner_product_queries(state).float().cpu().numpy())
    seen = tuple(
        np.asarray(matrix.indices[matrix.indptr[u] : matrix.indptr[u + 1]], dtype=np.int64)
        for u in users
    )
    if not parts:
        return SampledUsers(np.zeros((0, 0), dtype=np.float32), seen)
    return SampledUsers(np.ascontiguousarray(np.concatenate(parts), dtype=np.float32), seen)


def build_similarity_index(
    unit: np.ndarray, *, nlist: int | None = None, nprobe: int | None = None, seed: int = 0
) -> tuple[faiss.Index, IndexParams, Calibration | None]:
    """The similar-items index: ``build_index`` over rows already at unit length
    (``unit_rows``); its default ``nprobe`` is ``calibrate_nprobe``'s unless given."""
    # 1 only as the placeholder until calibrated: an nprobe of 0 that is given is refused
    # by ``build_index`` (it was taken for None and built with nprobe 1, unsaid).
    index, params = build_index(
        unit, nlist=nlist, nprobe=1 if nprobe is None else nprobe, seed=seed
    )
    calibration = None
    if nprobe is None:
        chosen, calibration = calibrate_nprobe(index, unit, seed=seed)
        faiss.extract_index_ivf(index).nprobe = chosen
        params = replace(params, nprobe=chosen)
    return index, replace(params, file=SIMILAR_FILE), calibration


def index_section(params: IndexParams, calibration: Calibration | None) -> dict[str, Any]:
    """An index's manifest section (``retrieval``, ``retrieval.similar``): the parameters,
    and how nprobe was chosen when it was measured."""
    section = params.to_dict()
    if calibration is not None:
        section["calibration"] = calibration.to_dict()
    return section


def build_for_scorer(
    scorer: Scorer,
    directory: Path,
    n_items: int,
    *,
    nlist: int | None = None,
    nprobe: int | None = None,
    similar_nprobe: int | None = None,
    seed: int = 0,
    history: Mapping[str, np.ndarray] | None = None,
) -> tuple[dict[str, Path], dict[str, Any]] | None:
    """Build the index files of an inner-product scorer of ``n_items`` items into
    ``directory`` (the store's scratch directory); their names -> paths and the
    manifest's ``retrieval`` section. None for any other scorer.

    The retrieval index always; the similar-items index too when the scorer has item
    vectors (``Scorer.item_vectors``), with the same ``nlist`` and seed and its own
    ``similar_nprobe`` (None: each index's defaults). The table is read from the
    scorer a chunk at a time and each index is written by FAISS as soon as it is
    built: neither is ever held whole as a second copy or as bytes.

    With the version's ``history`` (its CSR arrays) and no ``nprobe``, the retrieval
    index's breadth is calibrated on sampled training users (``sample_users``,
    ``calibrate_retrieval_nprobe``; ``retrieval["calibration"]``); an explicit
    ``nprobe`` is used as given, measured by nobody.
    """
    if not supports_ann(scorer):
        return None
    users = (
        None if history is None or nprobe is not None else sample_users(scorer, history, n_items)
    )
    path, retrieval = retrieval_index_file(
        scorer_rows(scorer, n_items),
        directory,
        nlist=nlist,
        nprobe=nprobe,
        seed=seed,
        users=users,
    )
    files = {INDEX_FILE: path}
    vectors = scorer.item_vectors()
    if vectors is not None:
        files[SIMILAR_FILE], retrieval["similar"] = similar_index_file(
            unit_rows(vectors.detach().float().cpu().numpy()),
            directory,
            nlist=nlist,
            nprobe=similar_nprobe,
            seed=seed,
        )
    return files, retrieval


def retrieval_index_file(
    rows: Rows,
    directory: Path,
    *,
    nlist: int | None,
    nprobe: int | None,
    seed: int,
    users: SampledUsers | None = None,
) -> tuple[Path, dict[str, Any]]:
    """``build_index`` written to ``directory`` (the index freed on return): its path
    and the manifest's ``retrieval`` parameters. With sampled ``users`` (and no
    ``nprobe``) its default breadth is ``calibrate_retrieval_nprobe``'s, recorded as
    ``calibration``; without (no users, or an explicit ``nprobe``) ``default_nprobe``."""
    index, params = build_index(rows, nlist=nlist, nprobe=nprobe, seed=seed)
    calibration = None
    if nprobe is None and users is not None and len(users):
        chosen, calibration = calibrate_retrieval_nprobe(index, rows, users.queries, users.seen)
        faiss.extract_index_ivf(index).nprobe = chosen
        params = replace(params, nprobe=chosen)
    return write_index_file(index, directory / INDEX_FILE), index_section(params, calibration)


def similar_index_file(
    unit: np.ndarray, directory: Path, *, nlist: int | None, nprobe: int | None, seed: int
) -> tuple[Path, dict[str, Any]]:
    """``build_similarity_index`` written to ``directory`` (the index freed on return):
    its path and the manifest's ``retrieval.similar``."""
    index, params, calibration = build_similarity_index(unit, nlist=nlist, nprobe=nprobe, seed=seed)
    return write_index_file(index, directory / SIMILAR_FILE), index_section(params, calibration)


#: What FAISS's file writer says when the file system refuses it (it raises RuntimeError).
_FAISS_IO_FAILURES = ("could not open", "write error")


def write_index_file(index: faiss.Index, path: Path) -> Path:
    """FAISS's own ``write_index`` (no pickle), straight to ``path``; the path.

    A write the file system refuses (a full disk, a missing folder) is an ``OSError``
    naming the file and the OS's reason: FAISS raises ``RuntimeError`` with its C++
    location, which a retrain job recorded as its error and ``genrec train`` let out as
    a traceback. Its other errors (an index it cannot serialise) stay as they are.
    """
    try:
        faiss.write_index(index, str(path))
    except RuntimeError as exc:
        message = str(exc)
        if not any(failure in message for failure in _FAISS_IO_FAILURES):
            raise
        why = message.split("failed: ", 1)[-1]  # FAISS's own text ends with the OS's reason
        raise OSError(f"{path}: the index cannot be written: {why}") from exc
    return path


def read_index(path: str, params: IndexParams, *, mmap: bool = True) -> faiss.Index:
    """Open a stored index, memory-mapped (read-only, shared page cache) when asked.

    The store has verified the file's checksum before this runs; the checks here
    catch an index that does not belong to the parameters the manifest records.
    """
    flags = faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY if mmap else 0
    try:
        index = faiss.read_index(path, flags)
    except RuntimeError as exc:  # FAISS raises RuntimeError for unreadable files
        raise AnnError(f"{path} is not a readable FAISS index: {exc}") from exc
    if index.ntotal != params.n_items or index.d != params.dims:
        raise AnnError(
            f"{path} holds {index.ntotal} x {index.d} rows; the manifest says "
            f"{params.n_items} x {params.dims}"
        )
    faiss.extract_index_ivf(index).nprobe = params.nprobe
    return index


def index_memory_bytes(index: faiss.Index) -> int:
    """Bytes of vectors, ids and centroids the index searches (what a search touches)."""
    ivf = faiss.extract_index_ivf(index)
    return int(ivf.ntotal * (ivf.code_size + 8) + ivf.nlist * ivf.d * 4)


def index_version(
    store: ModelStore,
    model: str,
    ref: str,
    *,
    nlist: int | None = None,
    nprobe: int | None = None,
    similar_nprobe: int | None = None,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> Manifest:
    """Build (or rebuild) the indexes of a stored version and add them to the version:
    the retrieval index, and the similar-items index when the scorer has item vectors.

    For versions saved before indexes existed, or to change ``nlist``/``nprobe``;
    ``genrec models index NAME@VERSION`` runs it and passes ``progress``, which is
    told each step (a million-item index takes minutes).

    Without ``nprobe`` the retrieval index's breadth is calibrated on sampled training
    users, whose queries need the whole model (a Mult-VAE's encoder makes its user
    states): the version is then read whole, the queries computed (a few hundred rows),
    and every tensor but the table's dropped before the build. With ``nprobe`` only the
    table's tensors are read, as before calibration existed.
    """
    say = progress if progress is not None else (lambda step: None)
    version = store.resolve(model, ref)
    manifest = store.manifest(model, version)
    # Only the tensors the item table and vectors are made of: a Mult-VAE's encoder is as
    # large as its item table, and no index reads it (docs/performance.md).
    table = scorer_class(manifest.model).table_tensors
    if table is None:
        raise AnnError(
            f"model '{manifest.model}' is not of inner-product form; it is always scored exactly"
        )
    calibrate = nprobe is None
    if calibrate:
        say(f"reading version {version} (all its tensors: users' queries measure the index)")
    else:
        say(f"reading version {version} ({', '.join(sorted(table))} of its tensors)")
    loaded = store.load(model, version, tensors=None if calibrate else table)
    users = None
    if calibrate:
        whole = stored_scorer(manifest.model, manifest.scorer_config, loaded.contents.tensors)
        users = sample_users(whole, loaded.contents.history, len(loaded.contents.item_ids))
        say(f"computed {len(users)} sampled training users' queries")
        del whole
        for name in set(loaded.contents.tensors) - table:  # the encoder: not read from here
            del loaded.contents.tensors[name]
    scorer = stored_scorer(manifest.model, manifest.scorer_config, loaded.contents.tensors)
    # Each index is written to a file of the store's scratch directory as soon as it is
    # built and handed over by path, and the retrieval table is read from the model a
    # chunk at a time (``scorer_rows``, which refuses a scorer not of inner-product
    # form): no table copy and no serialised index is ever held (docs/performance.md,
    # "A server's start-up memory at 1M items", on `genrec models index`).
    with store.scratch(model) as scratch:
        rows = scorer_rows(scorer, len(loaded.contents.item_ids))
        say(
            f"building the retrieval index over {rows.n:,} x {rows.dims}"
            + (" and measuring its recall" if users is not None and len(users) else "")
        )
        path, retrieval = retrieval_index_file(
            rows, scratch, nlist=nlist, nprobe=nprobe, seed=seed, users=users
        )
        files: dict[str, bytes | Path] = {INDEX_FILE: path}
        vectors = scorer.item_vectors()
        unit = None if vectors is None else unit_rows(vectors.detach().float().cpu().numpy())
        # The model's tensors: only the unit rows are needed from here.
        del loaded, scorer, vectors, rows
        if unit is not None:
            say(
                f"building the similar-items index over {unit.shape[0]:,} x {unit.shape[1]}"
                + (" and measuring its recall" if similar_nprobe is None else "")
            )
            files[SIMILAR_FILE], retrieval["similar"] = similar_index_file(
                unit, scratch, nlist=nlist, nprobe=similar_nprobe, seed=seed
            )
        say("writing the index files")
        return store.add_retrieval_index(
            model, version, files, retrieval, index_names=(INDEX_FILE, SIMILAR_FILE)
        )
