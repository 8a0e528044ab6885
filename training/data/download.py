"""Fetch GroupLens archives into a cache directory, verified before they are used.

An archive is streamed to ``<cache>/<name>.zip.part`` with a progress bar,
checked against the checksum pinned below (sha256 where one is published,
else md5), deleted and refused on a mismatch, renamed to ``<name>.zip`` and
extracted through a temporary folder that is renamed into place, so a crash
or a concurrent run never leaves a half-written data set that looks complete.

Pinned checksums and where they are published:
ml-100k, ml-1m, ml-20m, ml-25m, ml-latest-small: sha256 from TensorFlow
Datasets' ``url_checksums/movielens.txt`` (ml-25m's md5 ``6b51fb27…2ada``
equals GroupLens' own ``ml-25m.zip.md5``); ml-10m: md5 from GroupLens'
published list. ``ml-latest`` is re-issued over time, so its checksum is the
``.md5`` file GroupLens publishes beside the archive, fetched at download time.

The base URL is ``GENREC_DATASET_BASE_URL`` or an argument (a mirror, or a
local server in tests), defaulting to GroupLens.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import httpx
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from training.data.errors import DataError

DEFAULT_BASE_URL = "https://files.grouplens.org/datasets/movielens"
BASE_URL_ENV = "GENREC_DATASET_BASE_URL"
CACHE_DIR_ENV = "GENREC_CACHE_DIR"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Checksum:
    """A published digest of an archive."""

    algorithm: str  # "sha256" or "md5"
    digest: str


@dataclass(frozen=True)
class Archive:
    """A GroupLens zip: its file name, the folder it extracts to and its checksum."""

    name: str
    folder: str  # top-level folder inside the zip
    checksum: Checksum | None  # None: fetch the ``.md5`` GroupLens publishes beside it
    size: int | None = None  # bytes, where published; a cheap early check

    @property
    def filename(self) -> str:
        return f"{self.name}.zip"


ARCHIVES: dict[str, Archive] = {
    a.name: a
    for a in (
        Archive("ml-100k", "ml-100k", Checksum("sha256", "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229"), 4_924_029),
        Archive("ml-1m", "ml-1m", Checksum("sha256", "a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20"), 5_917_549),
        Archive("ml-10m", "ml-10M100K", Checksum("md5", "ce571fd55effeba0271552578f2648bd")),
        Archive("ml-20m", "ml-20m", Checksum("sha256", "96f243c338a8665f6bcc89c53edf6ee39162a846940de6b7c8c48aeada765ff3"), 198_702_078),
        Archive("ml-25m", "ml-25m", Checksum("sha256", "8b21cfb7eb1706b4ec0aac894368d90acf26ebdfb6aced3ebd4ad5bd1eb9c6aa"), 261_978_986),
        Archive("ml-latest-small", "ml-latest-small", Checksum("sha256", "696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436"), 978_202),
        Archive("ml-latest", "ml-latest", None),
    )
}  # fmt: skip


def default_cache_dir() -> Path:
    """``GENREC_CACHE_DIR``, else ``~/.cache/genrec``."""
    configured = os.environ.get(CACHE_DIR_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "genrec"


def dataset_base_url(base_url: str | None = None) -> str:
    """The argument, else ``GENREC_DATASET_BASE_URL``, else GroupLens; no trailing slash."""
    return (base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL).rstrip("/")


def archive(name: str) -> Archive:
    """The pinned archive description of a named set; DataError for an unknown name."""
    if name not in ARCHIVES:
        raise DataError(f"no GroupLens archive known for {name!r}; known: {', '.join(ARCHIVES)}")
    return ARCHIVES[name]


def fetch_dataset(
    name: str,
    cache_dir: Path | None = None,
    *,
    base_url: str | None = None,
    show_progress: bool = True,
    timeout_s: float = 60.0,
) -> Path:
    """Download (if not cached), verify and extract ``name``; the folder with its files."""
    spec = archive(name)
    cache = (cache_dir or default_cache_dir()).expanduser()
    target = cache / spec.folder
    if target.is_dir():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    zip_path = cache / spec.filename
    if not zip_path.is_file():
        download_archive(
            spec, zip_path, base_url=base_url, show_progress=show_progress, timeout_s=timeout_s
        )
    return extract_archive(zip_path, cache, spec.folder)


def download_archive(
    spec: Archive,
    destination: Path,
    *,
    base_url: str | None = None,
    show_progress: bool = True,
    timeout_s: float = 60.0,
) -> Path:
    """Stream ``spec`` from the base URL to ``destination``; refused on a checksum mismatch."""
    url = f"{dataset_base_url(base_url)}/{spec.filename}"
    partial = destination.with_name(destination.name + ".part")
    try:
        with httpx.Client(timeout=timeout_s, follow_redirects=True) as client:
            checksum = spec.checksum or _published_md5(client, url)
            _stream(client, url, partial, show_progress)
    except httpx.HTTPError as exc:
        partial.unlink(missing_ok=True)
        raise DataError(f"download of {url} failed: {exc}") from exc
    try:
        verify_file(partial, checksum, expected_size=spec.size, what=url)
    except DataError:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(destination)
    return destination


def verify_file(
    path: Path, checksum: Checksum, *, expected_size: int | None = None, what: str = ""
) -> None:
    """DataError unless ``path`` has the published size (when known) and digest."""
    label = what or str(path)
    size = path.stat().st_size
    if expected_size is not None and size != expected_size:
        raise DataError(
            f"{label}: {size} bytes, expected {expected_size}; refused (truncated or not the "
            "published archive)"
        )
    actual = file_digest(path, checksum.algorithm)
    if actual != checksum.digest.lower():
        raise DataError(
            f"{label}: {checksum.algorithm} {actual} does not match the published "
            f"{checksum.digest}; refused and deleted (corrupted or tampered download)"
        )


def file_digest(path: Path, algorithm: str) -> str:
    """Hex digest of a file, read in chunks (ML-25M is 262 MB)."""
    digest = hashlib.new(algorithm)
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def extract_archive(zip_path: Path, cache: Path, folder: str) -> Path:
    """Extract ``zip_path`` into ``cache`` and return ``cache/folder``, atomically.

    Members are extracted into a temporary folder beside the target and the
    data set folder is renamed into place, so a reader never sees half of it.
    A member whose path would leave the folder is refused (zip slip).
    """
    target = cache / folder
    staging = Path(tempfile.mkdtemp(prefix=f".{folder}-", dir=cache))
    try:
        try:
            with zipfile.ZipFile(zip_path) as zf:
                _check_members(zf, zip_path, folder)
                zf.extractall(staging)
        except zipfile.BadZipFile as exc:
            raise DataError(f"{zip_path}: not a zip archive ({exc}); delete it and retry") from exc
        try:
            (staging / folder).rename(target)
        except OSError:
            if not target.is_dir():  # another process may have finished first; that is fine
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _check_members(zf: zipfile.ZipFile, zip_path: Path, folder: str) -> None:
    for name in zf.namelist():
        parts = Path(name).parts
        if not parts or parts[0] != folder or ".." in parts or Path(name).is_absolute():
            raise DataError(
                f"{zip_path}: member {name!r} is outside the expected folder '{folder}/'; refused"
            )


def _published_md5(client: httpx.Client, url: str) -> Checksum:
    """GroupLens' ``<archive>.md5`` (``<hex>  <name>``) for archives re-issued over time."""
    response = client.get(url + ".md5")
    response.raise_for_status()
    digest = response.text.split()[0] if response.text.split() else ""
    if len(digest) != 32:
        raise DataError(f"{url}.md5 does not hold an md5 digest: {response.text[:80]!r}")
    return Checksum("md5", digest.lower())


def _stream(client: httpx.Client, url: str, partial: Path, show_progress: bool) -> None:
    with client.stream("GET", url) as response:
        response.raise_for_status()
        total = int(response.headers.get("content-length", 0)) or None
        with (
            partial.open("wb") as out,
            Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                disable=not show_progress,
                transient=True,
            ) as progress,
        ):
            task = progress.add_task(f"downloading {url.rsplit('/', 1)[-1]}", total=total)
            for chunk in response.iter_bytes(_CHUNK):
                out.write(chunk)
                progress.advance(task, len(chunk))
