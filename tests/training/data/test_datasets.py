"""``load_dataset``: every kind of spec, the lookup order data dir -> cache -> local
zip -> download, and the error that names both ways out."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import create_engine, text

from training.data.datasets import check_dataset, load_dataset
from training.data.errors import DataError


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def grouplens_mirror(data_dir: Path, tmp_path: Path) -> Iterator[str]:
    """A local stand-in for files.grouplens.org holding the real ml-latest-small.zip."""
    root = tmp_path / "www"
    root.mkdir()
    zip_name = "ml-latest-small.zip"
    (root / zip_name).write_bytes((data_dir / "ml-latest-small" / zip_name).read_bytes())
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(root)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_ml100k_from_the_data_dir(data_dir: Path, tmp_path: Path) -> None:
    data = load_dataset(" ML-100K ", data_dir=data_dir, cache_dir=tmp_path, allow_download=False)
    assert (len(data), data.n_users, data.n_items) == (100_000, 943, 1_682)
    assert data.item_meta is not None and data.item_meta["50"]["title"] == "Star Wars"


def test_data_dir_from_environment_and_pointing_at_the_set_itself(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GENREC_DATA_DIR", str(data_dir))
    assert len(load_dataset("ml-100k", cache_dir=tmp_path, allow_download=False)) == 100_000
    monkeypatch.setenv("GENREC_DATA_DIR", str(data_dir / "ml-100k"))
    assert len(load_dataset("ml-100k", cache_dir=tmp_path, allow_download=False)) == 100_000


def test_ml_latest_small_from_the_zip_in_the_data_dir(data_dir: Path, tmp_path: Path) -> None:
    """The shared data dir holds only the zip: it is verified and extracted into the cache."""
    cache = tmp_path / "cache"
    data = load_dataset("ml-latest-small", data_dir=data_dir, cache_dir=cache, allow_download=False)
    assert (len(data), data.n_users, data.n_items) == (100_836, 610, 9_724)
    assert sorted({float(r) for r in data.ratings}) == [0.5 * k for k in range(1, 11)]
    assert (cache / "ml-latest-small" / "movies.csv").is_file()
    again = load_dataset("ml-latest-small", data_dir=tmp_path / "empty", cache_dir=cache)
    assert again.fingerprint() == data.fingerprint()  # served from the cache


def test_download_when_nothing_is_on_disk(grouplens_mirror: str, tmp_path: Path) -> None:
    data = load_dataset(
        "ml-latest-small",
        data_dir=tmp_path / "nothing-here",
        cache_dir=tmp_path / "cache",
        base_url=grouplens_mirror,
    )
    assert (len(data), data.n_users, data.n_items) == (100_836, 610, 9_724)
    assert (tmp_path / "cache" / "ml-latest-small.zip").is_file()


def test_not_found_offline_names_both_options(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        load_dataset(
            "ml-1m", data_dir=tmp_path / "data", cache_dir=tmp_path / "cache", allow_download=False
        )
    message = str(info.value)
    assert f"GENREC_DATA_DIR=<dir> so that {tmp_path / 'data'}/ml-1m/ratings.dat" in message
    assert (
        f"be online so that https://files.grouplens.org/datasets/movielens/ml-1m.zip can be downloaded into {tmp_path / 'cache'}"
        in message
    )
    assert "downloads are disabled" in message


def test_failed_download_names_both_options_and_the_cause(tmp_path: Path) -> None:
    closed_port = "http://127.0.0.1:9"  # discard port: nothing listens there
    with pytest.raises(DataError, match=r"GENREC_DATA_DIR=.*be online.*download failed"):
        load_dataset(
            "ml-20m", data_dir=tmp_path, cache_dir=tmp_path / "cache", base_url=closed_port
        )


def test_ml1m_and_ml10m_folders_in_a_data_dir(tmp_path: Path) -> None:
    for folder in ("ml-1m", "ml-10M100K"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "ratings.dat").write_text("1::10::4::100\n2::10::5::200\n")
    ml1m = load_dataset("ml-1m", data_dir=tmp_path, cache_dir=tmp_path / "c", allow_download=False)
    ml10m = load_dataset(
        "ml-10m", data_dir=tmp_path, cache_dir=tmp_path / "c", allow_download=False
    )
    assert len(ml1m) == len(ml10m) == 2 and ml1m.item_meta is None
    (tmp_path / "ml-10M100K").rename(tmp_path / "ml-10m")  # the lower-case name is accepted too
    assert (
        len(
            load_dataset(
                "ml-10m", data_dir=tmp_path, cache_dir=tmp_path / "c", allow_download=False
            )
        )
        == 2
    )


def test_csv_and_parquet_paths(tmp_path: Path) -> None:
    frame = pd.DataFrame({"user_id": ["a", "b"], "item_id": ["x", "y"], "rating": [4.0, 2.0]})
    frame.to_csv(tmp_path / "log.csv", index=False)
    frame.to_parquet(tmp_path / "log.parquet")
    from_csv = load_dataset(str(tmp_path / "log.csv"))
    from_parquet = load_dataset(str(tmp_path / "log.parquet"))
    assert from_csv.fingerprint() == from_parquet.fingerprint() and from_csv.explicit


def test_db_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE interactions (id INTEGER PRIMARY KEY, user_id VARCHAR(256), "
                "item_id VARCHAR(256), rating FLOAT, ts DATETIME, created_at DATETIME)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO interactions (user_id, item_id, rating, ts, created_at) VALUES "
                "('u', 'i', NULL, '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
            )
        )
    engine.dispose()
    assert len(load_dataset("db", database_url=url)) == 1
    monkeypatch.setenv("GENREC_DATABASE_URL", url)
    assert not load_dataset("db").explicit
    monkeypatch.delenv("GENREC_DATABASE_URL")
    with pytest.raises(DataError, match="needs a database URL"):
        load_dataset("db")


@pytest.mark.parametrize("spec", ["ml-2m", "ratings.txt", "movielens"])
def test_unknown_spec(spec: str) -> None:
    with pytest.raises(DataError, match=f"unknown data spec '{spec}'"):
        load_dataset(spec)


def _plain(path: Path) -> None:
    path.write_text("user_id,item_id\nu,i\n")


@pytest.mark.parametrize(
    ("name", "write", "message"),
    [
        ("ratings.txt", _plain, "unknown data spec"),  # a file, but no suffix a reader takes
        ("absent.csv", None, "absent.csv: no such file"),
        ("folder.csv", Path.mkdir, "folder.csv: is a directory, not a file"),
        ("cols.csv", lambda p: p.write_text("user,item\nu,i\n"), "missing required column(s) user_id, item_id"),
        ("twice.csv", lambda p: p.write_text("user_id,item_id,rating,rating\n"), "column(s) rating appear more than once"),
        ("binary.csv", lambda p: p.write_bytes(b"\xff\xfe\x00\x81"), "binary.csv: not a readable CSV file"),
        ("plain.csv.gz", _plain, "plain.csv.gz: not a readable CSV file (Not a gzipped file"),
        ("empty.csv", lambda p: p.write_text(""), "empty.csv: the file is empty"),
        ("empty.parquet", lambda p: p.write_bytes(b""), "empty.parquet: the file is empty"),
        ("text.parquet", _plain, "text.parquet: not a readable Parquet file"),
    ],
)  # fmt: skip
def test_check_refuses_a_file_that_cannot_be_loaded_reading_no_rows(
    tmp_path: Path, name: str, write: Callable[[Path], object] | None, message: str
) -> None:
    """``train --nproc`` ran torchrun for these, and every rank failed in its own traceback."""
    path = tmp_path / name
    if write is not None:
        write(path)
    with pytest.raises(DataError) as refused:
        check_dataset(str(path))
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_check_passes_what_loads_and_refuses_a_log_it_cannot_read(tmp_path: Path) -> None:
    frame = pd.DataFrame({"user_id": ["a"], "item_id": ["x"], "rating": [4.0]})
    frame.to_csv(tmp_path / "log.csv.gz", index=False)
    frame.to_parquet(tmp_path / "log.parquet")
    for spec in ("log.csv.gz", "log.parquet"):
        check_dataset(str(tmp_path / spec))
        assert len(load_dataset(str(tmp_path / spec))) == 1
    url = f"sqlite:///{tmp_path / 'log.db'}"
    with pytest.raises(DataError, match="no table 'interactions'"):
        check_dataset("db", database_url=url)
    with pytest.raises(DataError, match=r"cannot read the interaction log at .*127\.0\.0\.1:1"):
        check_dataset("db", database_url="postgresql://postgres:s3cret@127.0.0.1:1/x")
