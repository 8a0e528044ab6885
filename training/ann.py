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
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import faiss
import numpy as np

from models_store import Manifest, ModelStore
from training.models import stored_scorer
from training.models.base import InnerProductScorer, ModelError, Scorer

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
#: The similar-items index searches a quarter of its lists by default: an item's nearest
#: neighbours by cosine are far harder to find than a user's top items by inner
#: product (measured on the 1,000,000-item synthetic catalog: Recall@100 0.26 with 32
#: of 4,000 lists, 0.89 with 1,024, in 23 ms a list against 130 ms exact;
#: docs/performance.md, "Similar items on an indexed catalog").
SIMILAR_NPROBE_FRACTION = 4


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


def build_index(
    table: np.ndarray, *, nlist: int | None = None, nprobe: int | None = None, seed: int = 0
) -> tuple[faiss.Index, IndexParams]:
    """IVF-flat inner-product index over ``table`` (I, D'), and its parameters."""
    n_items, dims = table.shape
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
    sample = table if n_train == n_items else table[np.sort(rng.choice(n_items, n_train, False))]
    index.train(np.ascontiguousarray(sample))
    index.add(table)
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


def index_bytes(index: faiss.Index) -> bytes:
    """FAISS's own serialisation (``write_index`` format) as bytes for the store."""
    return bytes(faiss.serialize_index(index).tobytes())


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """(I, d) float32 rows scaled to unit length (a zero row stays zero), in place on a
    float32 copy made chunk by chunk: cosine similarity is their inner product."""
    rows = np.array(vectors, dtype=np.float32, order="C", copy=True)
    for start in range(0, rows.shape[0], UNIT_CHUNK_ROWS):
        chunk = rows[start : start + UNIT_CHUNK_ROWS]
        chunk /= np.maximum(np.linalg.norm(chunk, axis=1, keepdims=True), 1e-12)
    return rows


def default_similar_nprobe(nlist: int) -> int:
    """Lists the similar-items index searches per query unless told otherwise."""
    return min(nlist, max(MIN_NPROBE, math.ceil(nlist / SIMILAR_NPROBE_FRACTION)))


def build_similarity_index(
    unit: np.ndarray, *, nlist: int | None = None, nprobe: int | None = None, seed: int = 0
) -> tuple[faiss.Index, IndexParams]:
    """The similar-items index: ``build_index`` over rows already at unit length
    (``unit_rows``), searching ``default_similar_nprobe`` lists unless told otherwise."""
    lists = default_nlist(unit.shape[0]) if nlist is None else nlist
    probes = default_similar_nprobe(lists) if nprobe is None else nprobe
    index, params = build_index(unit, nlist=lists, nprobe=probes, seed=seed)
    return index, replace(params, file=SIMILAR_FILE)


def build_for_scorer(
    scorer: Scorer,
    *,
    nlist: int | None = None,
    nprobe: int | None = None,
    similar_nprobe: int | None = None,
    seed: int = 0,
) -> tuple[dict[str, bytes], dict[str, Any]] | None:
    """The index files of an inner-product scorer (name -> bytes) and the manifest's
    ``retrieval`` section; None for any other scorer.

    The retrieval index always; the similar-items index too when the scorer has item
    vectors (``Scorer.item_vectors``), with the same ``nlist`` and seed and its own
    ``similar_nprobe`` (None: each index's defaults).
    """
    if not supports_ann(scorer):
        return None
    index, params = build_index(item_table(scorer), nlist=nlist, nprobe=nprobe, seed=seed)
    files = {INDEX_FILE: index_bytes(index)}
    retrieval = params.to_dict()
    del index
    vectors = scorer.item_vectors()
    if vectors is not None:
        unit = unit_rows(vectors.detach().float().cpu().numpy())
        similar, similar_params = build_similarity_index(
            unit, nlist=nlist, nprobe=similar_nprobe, seed=seed
        )
        files[SIMILAR_FILE] = index_bytes(similar)
        retrieval["similar"] = similar_params.to_dict()
    return files, retrieval


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
    """
    say = progress if progress is not None else (lambda step: None)
    version = store.resolve(model, ref)
    say(f"reading version {version}")
    loaded = store.load(model, version)
    manifest = loaded.manifest
    scorer = stored_scorer(manifest.model, manifest.scorer_config, loaded.contents.tensors)
    if not supports_ann(scorer):
        raise AnnError(
            f"model '{manifest.model}' is not of inner-product form; it is always scored exactly"
        )
    table = item_table(scorer)
    vectors = scorer.item_vectors()
    unit = None if vectors is None else unit_rows(vectors.detach().float().cpu().numpy())
    del loaded, scorer, vectors  # only the tables are needed from here: free the arrays
    say(f"building the retrieval index over {table.shape[0]:,} x {table.shape[1]}")
    index, params = build_index(table, nlist=nlist, nprobe=nprobe, seed=seed)
    del table  # the index holds its own copy of the rows
    files = {INDEX_FILE: index_bytes(index)}
    retrieval = params.to_dict()
    del index
    if unit is not None:
        say(f"building the similar-items index over {unit.shape[0]:,} x {unit.shape[1]}")
        similar, similar_params = build_similarity_index(
            unit, nlist=nlist, nprobe=similar_nprobe, seed=seed
        )
        del unit
        files[SIMILAR_FILE] = index_bytes(similar)
        retrieval["similar"] = similar_params.to_dict()
    say("writing the index files")
    return store.add_retrieval_index(model, version, files, retrieval)
