"""Generic interaction files (CSV, Parquet) and the vectorised ``Interactions`` builder.

A file has the columns ``user_id, item_id`` and optionally ``rating`` and
``timestamp`` (unix seconds, or ISO-8601 strings; naive times are UTC). Ids
are read as strings so ``"007"`` stays ``"007"``. ``explicit`` is whether a
``rating`` column exists: without one every record is an implicit 1.0.

Bad input is refused with a ``DataError`` that names the file, the column and
the first offending row (1-based, header not counted), because a training run
that silently drops or zero-fills rows trains a different model than the one
its manifest describes.

``build_interactions`` is the fast path every reader here uses: it gives the
same id order as ``Interactions.from_arrays`` (which sorts ids numerically when
they are all integers) but without a Python loop over records, so ML-25M's 25
million rows load in seconds.
"""

from __future__ import annotations

import lzma
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.api.types import (
    is_bool_dtype,
    is_datetime64_any_dtype,
    is_integer_dtype,
    is_numeric_dtype,
)

from training.data.encoding import first_non_utf8
from training.data.errors import DataError
from training.data.interactions import IdMap, Interactions

REQUIRED_COLUMNS = ("user_id", "item_id")
OPTIONAL_COLUMNS = ("rating", "timestamp")
_EPOCH = pd.Timestamp(0, tz="UTC")


def encode_ids(values: np.ndarray | pd.Series) -> tuple[IdMap, np.ndarray]:
    """Map raw ids to ``(IdMap, (N,) int64 indices)`` in ``IdMap.from_values`` order.

    Integer columns are factorised with ``sort=True`` (numeric order, hash-based:
    several times faster than ``np.unique``'s argsort on 25M rows); anything else
    is factorised and the few unique values are ordered by ``IdMap.from_values``.
    """
    array = values.to_numpy() if isinstance(values, pd.Series) else np.asarray(values)
    if is_integer_dtype(array.dtype):
        codes, uniques = pd.factorize(array, sort=True)
        return IdMap(tuple(str(v) for v in uniques.tolist())), codes.astype(np.int64)
    codes, labels = pd.factorize(pd.Series(array, dtype=object).astype(str), sort=False)
    id_map = IdMap.from_values(list(labels))
    remap = pd.Index(id_map.ids).get_indexer(labels)
    return id_map, remap[codes].astype(np.int64)


def build_interactions(
    users: np.ndarray | pd.Series,
    items: np.ndarray | pd.Series,
    ratings: np.ndarray | pd.Series | None = None,
    timestamps: np.ndarray | pd.Series | None = None,
    *,
    explicit: bool | None = None,
    item_meta: dict[str, dict[str, object]] | None = None,
) -> Interactions:
    """Vectorised ``Interactions.from_arrays``: same id maps, same arrays, no row loop."""
    user_map, user_idx = encode_ids(users)
    item_map, item_idx = encode_ids(items)
    n = len(user_idx)
    return Interactions(
        users=user_idx,
        items=item_idx,
        ratings=(
            np.ones(n, dtype=np.float32)
            if ratings is None
            else np.asarray(ratings, dtype=np.float32)
        ),
        timestamps=(
            np.zeros(n, dtype=np.int64)
            if timestamps is None
            else np.asarray(timestamps, dtype=np.int64)
        ),
        user_ids=user_map,
        item_ids=item_map,
        explicit=(ratings is not None) if explicit is None else explicit,
        item_meta=item_meta,
    )


def read_interaction_file(path: str | Path) -> Interactions:
    """Read a ``.csv`` (optionally compressed) or ``.parquet`` interaction file."""
    path = Path(path)
    _require_file(path)
    return read_parquet(path) if _is_parquet(path) else read_csv(path)


def check_interaction_file(path: str | Path) -> None:
    """Refuse what ``read_interaction_file`` refuses before any row, reading none: no file,
    a file that cannot be opened or decompressed, no header or no CSV, a missing or
    repeated column. For a check before work that is dear to start (``train --nproc``)."""
    path = Path(path)
    _require_file(path)
    if _is_parquet(path):
        _require_bytes(path)
        with _parquet_errors(path):
            check_columns(parquet_columns(path), path)
    else:
        with _csv_errors(path):
            check_columns(csv_header(path), path)


def _require_file(path: Path) -> None:
    if path.is_dir():  # not "no such file": the path is there, it is just not a file
        raise DataError(f"{path}: is a directory, not a file")
    if not path.is_file():
        raise DataError(f"{path}: no such file")


def _is_parquet(path: Path) -> bool:
    suffixes = [s.lower() for s in path.suffixes]
    return bool(suffixes) and suffixes[-1] in (".parquet", ".pq")


def read_csv(path: str | Path) -> Interactions:
    """Read a CSV with a header naming ``user_id,item_id[,rating][,timestamp]``."""
    path = Path(path)
    with _csv_errors(path):
        # The header as written first: pandas renames a repeated column ("rating" twice reads
        # as rating, rating.1), and the second one was silently dropped.
        check_columns(csv_header(path), path)
        # Only an empty field is missing: pandas' default also reads NA, null, None, nan ...
        # as missing, so the id "NA" could not be trained on (the API logs it) and a rating
        # "nan" was "missing" rather than not a finite number.
        frame = pd.read_csv(
            path,
            dtype={"user_id": str, "item_id": str},
            skipinitialspace=True,
            keep_default_na=False,
            na_values=[""],
            low_memory=False,
        )
    return frame_to_interactions(frame, path)


def csv_header(path: Path) -> list[str]:
    """The column names of a CSV's header line, as written (repeats kept, no rows read)."""
    first = pd.read_csv(
        path, header=None, nrows=1, dtype=str, keep_default_na=False, skipinitialspace=True
    )
    return [str(name) for name in first.iloc[0]]


@contextmanager
def _csv_errors(path: Path) -> Iterator[None]:
    """pandas' errors for a file that is no readable CSV, as a ``DataError`` naming it."""
    try:
        yield
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except pd.errors.EmptyDataError:
        raise DataError(
            f"{path}: the file is empty (expected a header line 'user_id,item_id')"
        ) from None
    except OSError as exc:  # no permission; a .gz or .bz2 name on a file that is not one
        raise DataError(f"{path}: not a readable CSV file ({exc.strerror or exc})") from exc
    except UnicodeDecodeError as exc:
        # pandas names the byte by its position in the chunk it was decoding ("position
        # 0"): the line is found in the file itself (not in a compressed one's bytes).
        place = first_non_utf8(path) if path.suffix.lower() == ".csv" else None
        raise DataError(
            f"{path}: not a readable CSV file ({place or exc}); save the file as UTF-8"
        ) from exc
    except (
        pd.errors.ParserError,
        ValueError,
        EOFError,  # a compressed file cut short
        zipfile.BadZipFile,
        lzma.LZMAError,
    ) as exc:
        raise DataError(f"{path}: not a readable CSV file ({exc})") from exc


def read_parquet(path: str | Path) -> Interactions:
    """Read a Parquet file with columns ``user_id, item_id[, rating][, timestamp]``."""
    path = Path(path)
    _require_bytes(path)
    with _parquet_errors(path):
        # The schema first: pyarrow refused a repeated column in a message of nine lines.
        check_columns(parquet_columns(path), path)
        frame = pd.read_parquet(path)
        nulls = _parquet_nulls(path, frame)
    return frame_to_interactions(frame, path, nulls)


def _require_bytes(path: Path) -> None:
    if path.is_file() and path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty")


def parquet_columns(path: Path) -> list[str]:
    """The column names of a Parquet file, from its footer (no rows read)."""
    import pyarrow.parquet as pq  # type: ignore[import-untyped]  # pyarrow ships no types

    return list(pq.read_schema(path).names)


def _parquet_nulls(path: Path, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Which rows are null in the file, for each rating or timestamp column of floats in
    which pandas shows a NaN.

    pandas reads a float column's nulls as NaN, yet a NaN is a value there too (not a
    finite number), as ``nan`` is in a CSV; only the file tells the two apart. The column
    is read again from the file only where pandas shows a NaN: a file with none pays
    nothing."""
    import pyarrow.parquet as pq

    named = {str(c).strip(): c for c in frame.columns}
    columns = [
        named[name]
        for name in OPTIONAL_COLUMNS
        if name in named
        and frame[named[name]].dtype.kind == "f"
        and bool(frame[named[name]].isna().any())
    ]
    if not columns:
        return {}
    table = pq.read_table(path, columns=columns)
    return {
        str(column).strip(): np.asarray(table.column(column).is_null(), dtype=bool)
        for column in columns
    }


@contextmanager
def _parquet_errors(path: Path) -> Iterator[None]:
    """pyarrow's errors for a file that is no readable Parquet, as a ``DataError`` naming it."""
    try:
        yield
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise DataError(f"{path}: not a readable Parquet file ({exc})") from exc


def frame_to_interactions(
    frame: pd.DataFrame, source: str | Path, nulls: Mapping[str, np.ndarray] | None = None
) -> Interactions:
    """Validate a frame with the generic columns and build ``Interactions`` from it.

    A missing value is one pandas reads as NA, except in a column ``nulls`` names: there
    it is one of the rows marked (``read_parquet``'s nulls, where pandas reads a null and
    a NaN alike), and a NaN is a value, refused as no finite number."""
    nulls = nulls or {}
    frame = frame.rename(columns=lambda c: str(c).strip())
    check_columns(list(frame.columns), source)
    if len(frame) == 0:
        raise DataError(f"{source}: has a header but no rows")
    for column in REQUIRED_COLUMNS:
        _refuse_missing(frame[column], source, column)
    explicit = "rating" in frame.columns
    ratings = _parse_ratings(frame["rating"], source, nulls.get("rating")) if explicit else None
    timestamps = (
        _parse_timestamps(frame["timestamp"], source, nulls.get("timestamp"))
        if "timestamp" in frame.columns
        else None
    )
    return build_interactions(
        frame["user_id"], frame["item_id"], ratings, timestamps, explicit=explicit
    )


def check_columns(columns: list[str], source: str | Path) -> None:
    """Refuse a header without ``user_id`` and ``item_id``, or one naming a column twice
    (which of the two is meant is a guess; unnamed columns are ignored, as extra ones are)."""
    names = [str(c).strip() for c in columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise DataError(
            f"{source}: missing required column(s) {', '.join(missing)}; "
            f"found {', '.join(names) or 'none'} "
            f"(expected user_id,item_id and optionally rating,timestamp)"
        )
    repeated = sorted({c for c in names if c and names.count(c) > 1})
    if repeated:
        raise DataError(
            f"{source}: column(s) {', '.join(repeated)} appear more than once; "
            "each column may appear once"
        )


def _is_number_column(column: pd.Series) -> bool:
    """Numeric dtype, but not bool: True/False is no rating and no time."""
    return is_numeric_dtype(column) and not is_bool_dtype(column)


def _refuse_missing(
    column: pd.Series, source: str | Path, name: str, nulls: np.ndarray | None = None
) -> None:
    """Refuse the first missing value: a row ``nulls`` marks, or (None) one pandas reads as NA."""
    missing = column.isna().to_numpy() if nulls is None else nulls
    if missing.any():
        row = int(np.argmax(missing))
        raise DataError(f"{source}: column {name}, row {row + 1}: value is missing")


def _refuse_first(bad: np.ndarray, column: pd.Series, source: str | Path, why: str) -> None:
    """Refuse the first row ``bad`` marks, quoting its value as the file has it: one form
    for every value refusal, so each names the file, column and row alike."""
    if bad.any():
        row = int(np.argmax(bad))
        raise DataError(
            f"{source}: column {column.name}, row {row + 1}: value {str(column.iloc[row])!r} {why}"
        )


def _parse_ratings(
    column: pd.Series, source: str | Path, nulls: np.ndarray | None = None
) -> np.ndarray:
    """Ratings as float32; a missing (``_refuse_missing``) or non-finite value is an error."""
    _refuse_missing(column, source, "rating", nulls)
    if _is_number_column(column):
        values = column.to_numpy(dtype=np.float64)
    else:
        values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
    _refuse_first(~np.isfinite(values), column, source, "is not a finite number")
    # Ratings are stored as float32: 1e308 became inf there, and the version failed to save
    # ("scorer_config is not JSON-serialisable") after the whole training.
    too_large = np.abs(values) > np.finfo(np.float32).max
    _refuse_first(
        too_large, column, source, "is too large for a rating (ratings are stored as 32-bit floats)"
    )
    return values.astype(np.float32)


def _parse_timestamps(
    column: pd.Series, source: str | Path, nulls: np.ndarray | None = None
) -> np.ndarray:
    """Unix seconds (int64) from numbers, numeric strings, datetimes or ISO-8601 strings."""
    _refuse_missing(column, source, "timestamp", nulls)
    if is_datetime64_any_dtype(column):
        return datetimes_to_seconds(column)
    if _is_number_column(column):
        return _finite_seconds(column.to_numpy(dtype=np.float64), column, source)
    numeric = pd.to_numeric(column, errors="coerce")
    if numeric.notna().all():
        return _finite_seconds(numeric.to_numpy(dtype=np.float64), column, source)
    parsed = pd.to_datetime(column.astype(str), utc=True, errors="coerce", format="ISO8601")
    _refuse_first(
        parsed.isna().to_numpy(),
        column,
        source,
        "is neither unix seconds nor an ISO-8601 date-time (the whole column must use one form)",
    )
    return datetimes_to_seconds(parsed)


#: Unix seconds of 9999-12-31T23:59:59Z, the last instant a ``datetime`` holds: the
#: manifest records the newest timestamp as a date, and 99999999999999999 failed there
#: (an OSError after the whole training).
MAX_SECONDS = 253_402_300_799
#: 0001-01-01T00:00:00Z, the first.
MIN_SECONDS = -62_135_596_800


def _finite_seconds(values: np.ndarray, column: pd.Series, source: str | Path) -> np.ndarray:
    _refuse_first(~np.isfinite(values), column, source, "is not a finite number of seconds")
    out_of_range = (values > MAX_SECONDS) | (values < MIN_SECONDS)
    _refuse_first(
        out_of_range, column, source, "is not a date between the years 1 and 9999 in unix seconds"
    )
    return np.floor(values).astype(np.int64)


def datetimes_to_seconds(column: pd.Series) -> np.ndarray:
    """Whole unix seconds; naive datetimes are taken as UTC."""
    if column.dt.tz is None:
        column = column.dt.tz_localize("UTC")
    seconds = (column - _EPOCH) // pd.Timedelta(seconds=1)
    return seconds.to_numpy(dtype=np.int64)
