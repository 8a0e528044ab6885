"""The zip + checksum path for real: the byte-exact GroupLens ``ml-latest-small.zip``
served by a local HTTP server, next to corrupted and truncated copies that must be
refused and deleted."""

from __future__ import annotations

import hashlib
import shutil
import threading
import zipfile
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from training.data.download import (
    ARCHIVES,
    Checksum,
    dataset_base_url,
    extract_archive,
    fetch_dataset,
    verify_file,
)
from training.data.errors import DataError

SMALL = ARCHIVES["ml-latest-small"]


class _QuietHandler(SimpleHTTPRequestHandler):
    requests: ClassVar[list[str]] = []

    def log_message(self, format: str, *args: object) -> None:
        _QuietHandler.requests.append(self.path)


@pytest.fixture(scope="module")
def server(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``http://127.0.0.1:<port>`` serving good/, flipped/, short/ and md5/ copies."""
    root = tmp_path_factory.mktemp("www")
    real = (data_dir / "ml-latest-small" / SMALL.filename).read_bytes()
    flipped = bytearray(real)
    flipped[len(real) // 2] ^= 0xFF  # same size, different bytes: only the digest can tell
    for folder, payload in (("good", real), ("flipped", bytes(flipped)), ("short", real[:-100])):
        (root / folder).mkdir()
        (root / folder / SMALL.filename).write_bytes(payload)
    _write_ml_latest(root / "md5")
    handler = partial(_QuietHandler, directory=str(root))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _write_ml_latest(folder: Path) -> None:
    """A tiny archive in the ``ml-latest`` layout with its ``.md5`` beside it, as GroupLens
    publishes for the re-issued full set; ``wrong/`` holds the same zip with a bad md5."""
    folder.mkdir()
    zip_path = folder / "ml-latest.zip"
    with zipfile.ZipFile(zip_path, "w") as zf:
        zf.writestr("ml-latest/ratings.csv", "userId,movieId,rating,timestamp\n1,2,3.5,100\n")
    digest = hashlib.md5(zip_path.read_bytes()).hexdigest()
    (folder / "ml-latest.zip.md5").write_text(f"{digest}  ml-latest.zip\n")
    (folder / "wrong").mkdir()
    shutil.copy(zip_path, folder / "wrong" / "ml-latest.zip")
    (folder / "wrong" / "ml-latest.zip.md5").write_text("0" * 32 + "  ml-latest.zip\n")


def test_real_archive_is_downloaded_verified_and_extracted(server: str, tmp_path: Path) -> None:
    folder = fetch_dataset(
        "ml-latest-small", tmp_path, base_url=f"{server}/good", show_progress=False
    )
    assert folder == tmp_path / "ml-latest-small"
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.txt", "links.csv", "movies.csv", "ratings.csv", "tags.csv",
    ]  # fmt: skip
    assert (folder / "ratings.csv").read_text().count("\n") == 100_836 + 1
    assert (tmp_path / SMALL.filename).stat().st_size == SMALL.size
    assert not list(tmp_path.glob("*.part")) and not list(tmp_path.glob(".ml-latest-small-*"))
    # A second call is served from the cache: no request reaches the server.
    _QuietHandler.requests.clear()
    assert fetch_dataset("ml-latest-small", tmp_path, base_url=f"{server}/good") == folder
    assert _QuietHandler.requests == []


@pytest.mark.parametrize(
    ("copy", "pattern"),
    [("flipped", "sha256 .* does not match the published 696d65a3"), ("short", "bytes, expected 978202")],
)  # fmt: skip
def test_corrupted_archive_is_refused_and_deleted(
    server: str, tmp_path: Path, copy: str, pattern: str
) -> None:
    with pytest.raises(DataError, match=pattern):
        fetch_dataset("ml-latest-small", tmp_path, base_url=f"{server}/{copy}", show_progress=False)
    assert list(tmp_path.iterdir()) == []  # neither the zip, nor a .part, nor a folder


def test_base_url_from_environment(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GENREC_DATASET_BASE_URL", f"{server}/good/")
    assert dataset_base_url() == f"{server}/good"
    assert (
        fetch_dataset("ml-latest-small", tmp_path, show_progress=False) / "movies.csv"
    ).is_file()


def test_missing_archive_on_server(server: str, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"download of .*/nowhere/ml-latest-small\.zip failed"):
        fetch_dataset(
            "ml-latest-small", tmp_path, base_url=f"{server}/nowhere", show_progress=False
        )
    assert list(tmp_path.iterdir()) == []


def test_unpinned_archive_checked_against_published_md5(server: str, tmp_path: Path) -> None:
    folder = fetch_dataset(
        "ml-latest", tmp_path / "ok", base_url=f"{server}/md5", show_progress=False
    )
    assert (folder / "ratings.csv").is_file()
    with pytest.raises(DataError, match=r"md5 .* does not match"):
        fetch_dataset(
            "ml-latest", tmp_path / "bad", base_url=f"{server}/md5/wrong", show_progress=False
        )
    assert list((tmp_path / "bad").iterdir()) == []


def test_unknown_archive_name(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no GroupLens archive known for 'ml-2m'"):
        fetch_dataset("ml-2m", tmp_path)


def test_verify_file_accepts_the_real_zip(data_dir: Path) -> None:
    path = data_dir / "ml-latest-small" / SMALL.filename
    assert SMALL.checksum is not None
    verify_file(path, SMALL.checksum, expected_size=SMALL.size)
    verify_file(path, Checksum("md5", "31a303aabbc519bd33d025e44d6c2570"))  # GroupLens' md5


def test_extract_refuses_members_outside_the_folder(tmp_path: Path) -> None:
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("ml-1m/ratings.dat", "1::1::5::1\n")
        zf.writestr("ml-1m/../../escaped.txt", "x")
    cache = tmp_path / "cache"
    cache.mkdir()
    with pytest.raises(DataError, match="outside the expected folder"):
        extract_archive(evil, cache, "ml-1m")
    assert list(cache.iterdir()) == [] and not (tmp_path / "escaped.txt").exists()


def test_extract_refuses_a_non_zip(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.zip"
    bogus.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a zip archive"):
        extract_archive(bogus, tmp_path, "ml-1m")
