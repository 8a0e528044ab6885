"""``load_dataset(spec)``: the one entry point from a data spec to ``Interactions``.

``spec`` is one of

- a MovieLens name: ``ml-100k | ml-1m | ml-10m | ml-20m | ml-25m | ml-latest-small | ml-latest``;
- a path ending in ``.csv`` (optionally ``.gz``/``.bz2``/``.zip``/``.xz``) or ``.parquet``;
- ``db``: the service's interaction log at ``database_url`` (or ``GENREC_DATABASE_URL``),
  up to ``until`` when given: a version trained on it records that instant as when it
  read the log (``training.pipeline.save_trained``), which erasures are dated against.

A named set is looked for, in order, as GroupLens ships it under the data
directory (``<data_dir>/<folder>/``, default ``GENREC_DATA_DIR``), extracted
in the cache directory (default ``GENREC_CACHE_DIR`` or ``~/.cache/genrec``),
as a GroupLens zip in either (verified, then extracted into the cache), and
finally downloaded into the cache when ``allow_download``. When none of these
works the ``DataError`` names both ways out: the data directory layout, or
being online for the download.

``check_dataset(spec)`` refuses what ``load_dataset`` would refuse before its first
record, reading none: for a check before work that is dear to start (``train --nproc``).
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from training.data.download import (
    ARCHIVES,
    dataset_base_url,
    default_cache_dir,
    extract_archive,
    fetch_dataset,
    verify_file,
)
from training.data.errors import DataError
from training.data.files import check_interaction_file, read_interaction_file
from training.data.interactions import Interactions
from training.data.log_reader import check_interaction_log, read_interaction_log
from training.data.movielens import LAYOUTS, Layout, read_movielens

DATA_DIR_ENV = "GENREC_DATA_DIR"
DATABASE_URL_ENV = "GENREC_DATABASE_URL"
FILE_SUFFIXES = (".csv", ".parquet", ".pq")
COMPRESSION_SUFFIXES = (".gz", ".bz2", ".zip", ".xz", ".zst")


def load_dataset(
    spec: str,
    *,
    data_dir: Path | None = None,
    cache_dir: Path | None = None,
    database_url: str | None = None,
    allow_download: bool = True,
    base_url: str | None = None,
    until: datetime | None = None,
    ratings_only: bool = False,
) -> Interactions:
    """Read the data set ``spec`` names (see the module docstring); ``until`` bounds a read
    of the log (``names_log``), and ``ratings_only`` leaves out its unrated rows when it holds
    ratings, as ``read_interaction_log`` does (a file or named set is read whole)."""
    name = spec.strip().lower()
    if name in LAYOUTS:
        folder = locate_named(
            name,
            data_dir=data_dir,
            cache_dir=cache_dir,
            allow_download=allow_download,
            base_url=base_url,
        )
        return read_movielens(name, folder)
    if names_log(spec):
        return read_interaction_log(
            log_database_url(database_url), until=until, ratings_only=ratings_only
        )
    if _is_file_spec(spec):
        return read_interaction_file(Path(spec).expanduser())
    raise _unknown_spec(spec)


def names_log(spec: str) -> bool:
    """Whether ``spec`` names the service's interaction log (``db``)."""
    return spec.strip().lower() == "db"


def check_dataset(
    spec: str,
    *,
    data_dir: Path | None = None,
    cache_dir: Path | None = None,
    database_url: str | None = None,
    allow_download: bool = True,
    base_url: str | None = None,
) -> None:
    """Refuse a ``spec`` that ``load_dataset`` would refuse at once, reading no records: an
    unknown spec or file suffix; a file that is missing, unreadable, no CSV or Parquet, or
    whose header lacks a required column; a named set neither on disk nor downloadable
    (fetched here, as ``load_dataset`` would); a database that cannot be reached or has no
    interaction log. What only the records show (a bad value in row 7) is left to the load.
    """
    name = spec.strip().lower()
    if name in LAYOUTS:
        locate_named(
            name,
            data_dir=data_dir,
            cache_dir=cache_dir,
            allow_download=allow_download,
            base_url=base_url,
        )
    elif names_log(spec):
        check_interaction_log(log_database_url(database_url))
    elif _is_file_spec(spec):
        check_interaction_file(Path(spec).expanduser())
    else:
        raise _unknown_spec(spec)


def log_database_url(database_url: str | None) -> str:
    """The log's URL: ``database_url``, else the environment's; DataError when neither."""
    url = database_url or os.environ.get(DATABASE_URL_ENV)
    if not url:
        raise DataError(
            f"data spec 'db' needs a database URL: pass database_url or set {DATABASE_URL_ENV}"
        )
    return url


def _unknown_spec(spec: str) -> DataError:
    return DataError(
        f"unknown data spec {spec!r}: expected one of {', '.join(LAYOUTS)}, "
        "a path ending in .csv or .parquet, or 'db'"
    )


def locate_named(
    name: str,
    *,
    data_dir: Path | None = None,
    cache_dir: Path | None = None,
    allow_download: bool = True,
    base_url: str | None = None,
) -> Path:
    """The folder holding the files of the named set, fetching it if need be."""
    layout = LAYOUTS[name]
    data_root = _data_root(data_dir)
    cache = (cache_dir or default_cache_dir()).expanduser()
    for root in (data_root, cache):
        found = _find_layout(root, layout) if root is not None else None
        if found is not None:
            return found
    local_zip = _find_archive(name, [data_root, cache])
    if local_zip is not None:
        return _extract_local(name, local_zip, cache, layout)
    reason = "downloads are disabled (allow_download=False)"
    if allow_download and name in ARCHIVES:
        try:
            folder = fetch_dataset(name, cache, base_url=base_url)
        except (DataError, OSError) as exc:
            reason = f"the download failed: {exc}"
        else:
            if (folder / layout.ratings_file).is_file():
                return folder
            reason = f"the downloaded archive has no {layout.ratings_file} in {folder}"
    raise DataError(_not_found_message(layout, data_root, cache, base_url, reason))


def _data_root(data_dir: Path | None) -> Path | None:
    if data_dir is not None:
        return Path(data_dir).expanduser()
    configured = os.environ.get(DATA_DIR_ENV)
    return Path(configured).expanduser() if configured else None


def _find_layout(root: Path, layout: Layout) -> Path | None:
    """``root/<folder>/`` holding the ratings file, or ``root`` itself when it is that folder."""
    for folder in layout.folders:
        if (root / folder / layout.ratings_file).is_file():
            return root / folder
    if root.name in layout.folders and (root / layout.ratings_file).is_file():
        return root
    return None


def _find_archive(name: str, roots: list[Path | None]) -> Path | None:
    """A GroupLens zip already on disk: ``<root>/<name>/<name>.zip`` or ``<root>/<name>.zip``."""
    if name not in ARCHIVES:
        return None
    filename = ARCHIVES[name].filename
    for root in roots:
        if root is None:
            continue
        for candidate in (root / name / filename, root / filename):
            if candidate.is_file():
                return candidate
    return None


def _extract_local(name: str, zip_path: Path, cache: Path, layout: Layout) -> Path:
    """Verify a zip found on disk (never deleted: it may be read-only data) and extract it."""
    spec = ARCHIVES[name]
    if spec.checksum is not None:
        verify_file(zip_path, spec.checksum, expected_size=spec.size)
    cache.mkdir(parents=True, exist_ok=True)
    folder = extract_archive(zip_path, cache, spec.folder)
    if not (folder / layout.ratings_file).is_file():
        raise DataError(f"{zip_path}: the archive has no {spec.folder}/{layout.ratings_file}")
    return folder


def _not_found_message(
    layout: Layout, data_root: Path | None, cache: Path, base_url: str | None, reason: str
) -> str:
    where = f"{data_root}/" if data_root is not None else "<dir>/"
    url = f"{dataset_base_url(base_url)}/{layout.name}.zip"
    return (
        f"data set '{layout.name}' not found. Either set {DATA_DIR_ENV}=<dir> so that "
        f"{where}{layout.folders[0]}/{layout.ratings_file} exists (the files as GroupLens "
        f"ships them; currently {DATA_DIR_ENV}={data_root or 'unset'}), or be online so that "
        f"{url} can be downloaded into {cache} ({reason})."
    )


def _is_file_spec(spec: str) -> bool:
    suffixes = [s.lower() for s in Path(spec).suffixes]
    while suffixes and suffixes[-1] in COMPRESSION_SUFFIXES:
        suffixes.pop()
    return bool(suffixes) and suffixes[-1] in FILE_SUFFIXES
