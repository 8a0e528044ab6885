"""Generic CSV / Parquet interaction files and the vectorised builder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from training.data.errors import DataError
from training.data.files import build_interactions, read_csv, read_interaction_file, read_parquet
from training.data.interactions import Interactions


def _write(tmp_path: Path, text: str, name: str = "log.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_builder_equals_from_arrays_for_int_and_string_ids() -> None:
    rng = np.random.default_rng(0)
    users = rng.integers(-5, 50, size=300)
    items = np.array([f"i{n}" for n in rng.integers(0, 40, size=300)], dtype=object)
    ratings = rng.integers(1, 6, size=300).astype(np.float32)
    ts = rng.integers(0, 10**9, size=300)
    fast = build_interactions(users, items, ratings, ts)
    slow = Interactions.from_arrays(users, items, ratings, ts)
    assert fast.user_ids == slow.user_ids and fast.item_ids == slow.item_ids
    for name in ("users", "items", "ratings", "timestamps"):
        np.testing.assert_array_equal(getattr(fast, name), getattr(slow, name))
    assert fast.explicit and not build_interactions(users, items).explicit


def test_csv_with_all_columns_and_unix_seconds(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "user_id,item_id,rating,timestamp\nu1,007,4.5,1700000000\nu2,7,3,1700000100.9\n",
    )
    data = read_csv(path)
    assert data.explicit
    assert set(data.item_ids.ids) == {"7", "007"}  # ids are strings: leading zeros survive
    assert data.ratings.tolist() == [4.5, 3.0]
    assert data.timestamps.tolist() == [1_700_000_000, 1_700_000_100]


def test_csv_without_rating_is_implicit(tmp_path: Path) -> None:
    data = read_interaction_file(_write(tmp_path, "user_id,item_id\na,x\nb,x\na,y\n"))
    assert not data.explicit
    assert data.ratings.tolist() == [1.0, 1.0, 1.0] and data.timestamps.tolist() == [0, 0, 0]
    assert (data.n_users, data.n_items) == (2, 2)


def test_csv_iso8601_timestamps(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "user_id,item_id,timestamp\n"
        "1,50,2026-11-23T10:00:00Z\n"
        "1,51,2026-11-23T12:00:00+02:00\n"
        "2,50,2026-11-23 10:00:01\n",  # naive: UTC
    )
    expected = int(pd.Timestamp("2026-11-23T10:00:00Z").timestamp())
    assert read_csv(path).timestamps.tolist() == [expected, expected, expected + 1]


def test_csv_extra_columns_are_ignored_and_header_spaces_tolerated(tmp_path: Path) -> None:
    data = read_csv(_write(tmp_path, "user_id, item_id, rating, note\n1, 2, 5, great\n"))
    assert data.ratings.tolist() == [5.0] and data.item_ids.ids == ("2",)


def test_compressed_csv(tmp_path: Path) -> None:
    path = tmp_path / "log.csv.gz"
    pd.DataFrame({"user_id": ["1", "2"], "item_id": ["3", "3"]}).to_csv(path, index=False)
    assert len(read_interaction_file(path)) == 2


def test_parquet_round_trip_with_datetime_column(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "user_id": [10, 11, 10],
            "item_id": ["a", "b", "b"],
            "rating": [1.0, 2.0, 3.0],
            "timestamp": pd.to_datetime([0, 60, 120], unit="s", utc=True),
        }
    )
    path = tmp_path / "log.parquet"
    frame.to_parquet(path)
    data = read_interaction_file(path)
    assert data.user_ids.ids == ("10", "11") and data.item_ids.ids == ("a", "b")
    assert data.timestamps.tolist() == [0, 60, 120] and data.ratings.tolist() == [1.0, 2.0, 3.0]


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("", r"log\.csv: the file is empty"),
        ("user_id,item_id\n", r"log\.csv: has a header but no rows"),
        ("user,item\n1,2\n", r"log\.csv: missing required column\(s\) user_id, item_id; found user, item"),
        ("user_id,item_id,rating,rating\n1,2,5,1\n", r"log\.csv: column\(s\) rating appear more than once"),
        ("user_id,item_id ,item_id,rating\n1,2,3,5\n", r"log\.csv: column\(s\) item_id appear more than once"),
        ("user_id,item_id,rating\n1,2,5\n1,3,five\n", r"log\.csv: column rating, row 2: value 'five' is not a finite number"),
        ("user_id,item_id,rating\n1,2,5\n1,3,\n", r"log\.csv: column rating, row 2: value is missing"),
        ("user_id,item_id,rating\n1,2,5\n1,3,nan\n", r"log\.csv: column rating, row 2: value 'nan' is not a finite number"),
        ("user_id,item_id,rating\n1,2,5\n1,3,NaN\n", r"log\.csv: column rating, row 2: value 'NaN' is not a finite number"),
        ("user_id,item_id,rating\n1,2,5\n1,3,-inf\n", r"log\.csv: column rating, row 2: value '-inf' is not a finite number"),
        ("user_id,item_id,rating\n1,2,5\n1,3,NA\n", r"log\.csv: column rating, row 2: value 'NA' is not a finite number"),
        ("user_id,item_id\n1,2\n,3\n", r"log\.csv: column user_id, row 2: value is missing"),
        ("user_id,item_id,timestamp\n1,2,2026-01-01T00:00:00Z\n1,3,yesterday\n", r"log\.csv: column timestamp, row 2: value 'yesterday' is neither"),
        ("user_id,item_id,timestamp\n1,2,5\n1,3,inf\n", r"log\.csv: column timestamp, row 2: value 'inf' is not a finite"),
        ("user_id,item_id,rating\n1,2,5\n1,3,1e308\n", r"log\.csv: column rating, row 2: value '1e\+?308' is too large"),
        ("user_id,item_id,timestamp\n1,2,5\n1,3,99999999999999999\n", r"log\.csv: column timestamp, row 2: value '99999999999999999' is not a date between the years 1 and 9999"),
    ],
)  # fmt: skip
def test_csv_bad_input_names_file_column_and_row(tmp_path: Path, text: str, pattern: str) -> None:
    with pytest.raises(DataError, match=pattern):
        read_csv(_write(tmp_path, text))


def test_only_an_empty_csv_field_is_missing(tmp_path: Path) -> None:
    """pandas reads ``nan``, ``NA``, ``null`` ... as missing: a rating ``nan`` was refused as
    "value is missing" and the id ``NA`` (Namibia) could not be trained on, while the API
    logs it. Ids are opaque text; an empty field is the one missing value."""
    data = read_csv(_write(tmp_path, "user_id,item_id,rating\nNA,null,5\nnan,None,4\n"))
    assert set(data.user_ids.ids) == {"NA", "nan"} and set(data.item_ids.ids) == {"null", "None"}
    assert data.ratings.tolist() == [5.0, 4.0]


def test_a_csv_that_is_not_utf8_names_the_line_of_its_first_bad_byte(tmp_path: Path) -> None:
    """pandas named the byte by its position in the chunk it decodes ("in position 0")."""
    rows = [b"user_id,item_id"] + [b"u%d,i%d" % (n, n) for n in range(5000)]
    rows[4001] = b"u4000,caf\xe9"
    path = tmp_path / "log.csv"
    path.write_bytes(b"\xef\xbb\xbf" + b"\r\n".join(rows) + b"\r\n")
    with pytest.raises(DataError) as err:
        read_csv(path)
    assert f"{path}: not a readable CSV file (line 4002, column 10: byte 0xe9 is not UTF-8" in (
        str(err.value)
    )


def test_parquet_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty.parquet"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match=r"empty\.parquet: the file is empty"):
        read_parquet(empty)
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match=r"garbage\.parquet: not a readable Parquet file"):
        read_parquet(garbage)
    no_items = tmp_path / "no_items.parquet"
    pd.DataFrame({"user_id": [1]}).to_parquet(no_items)
    with pytest.raises(DataError, match=r"missing required column\(s\) item_id"):
        read_parquet(no_items)
    repeated = tmp_path / "repeated.parquet"
    names = ["user_id", "item_id", "rating", "rating"]
    pq.write_table(
        pa.table([pa.array(["u"]), pa.array(["i"]), [1.0], [2.0]], names=names), repeated
    )
    with pytest.raises(
        DataError, match=r"repeated\.parquet: column\(s\) rating appear more than once"
    ):
        read_parquet(repeated)


@pytest.mark.parametrize(
    ("column", "value", "pattern"),
    [
        ("rating", None, r"log\.parquet: column rating, row 2: value is missing"),
        ("rating", float("nan"), r"log\.parquet: column rating, row 2: value 'nan' is not a finite number"),
        ("rating", float("inf"), r"log\.parquet: column rating, row 2: value 'inf' is not a finite number"),
        ("rating", float("-inf"), r"log\.parquet: column rating, row 2: value '-inf' is not a finite number"),
        ("timestamp", None, r"log\.parquet: column timestamp, row 2: value is missing"),
        ("timestamp", float("nan"), r"log\.parquet: column timestamp, row 2: value 'nan' is not a finite number of seconds"),
        ("timestamp", float("inf"), r"log\.parquet: column timestamp, row 2: value 'inf' is not a finite number of seconds"),
    ],
)  # fmt: skip
def test_a_parquet_null_is_missing_and_a_nan_is_no_finite_number(
    tmp_path: Path, column: str, value: float | None, pattern: str
) -> None:
    """pandas reads a Parquet null and a NaN alike as NaN, and both were "value is
    missing"; a CSV refuses only an empty field as missing and ``nan`` as not a finite
    number. A Parquet file now says the same: null is missing, NaN or +/-inf is no
    finite rating (or number of seconds), naming the row."""
    columns: dict[str, list[float | None]] = {"rating": [5.0, 4.0, 3.0], "timestamp": [0, 60, 120]}
    columns[column][1] = value  # row 2
    path = tmp_path / "log.parquet"
    pq.write_table(
        pa.table(
            {
                "user_id": ["u1", "u2", "u3"],
                "item_id": ["i1", "i2", "i3"],
                **{name: pa.array(values, pa.float64()) for name, values in columns.items()},
            }
        ),
        path,
    )
    with pytest.raises(DataError, match=pattern):
        read_parquet(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        read_interaction_file(tmp_path / "absent.csv")


def test_a_directory_is_not_a_file(tmp_path: Path) -> None:
    """It read "no such file", though the path is there."""
    folder = tmp_path / "x.csv"
    folder.mkdir()
    with pytest.raises(DataError, match=r"x\.csv: is a directory, not a file"):
        read_interaction_file(folder)
