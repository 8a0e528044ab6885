"""Readers for the MovieLens data sets in the layouts GroupLens ships them.

Harper & Konstan, "The MovieLens Datasets: History and Context", ACM TiiS
5(4):19, 2015. Each reader takes the folder that holds the files and returns
``Interactions`` (explicit ratings, unix-second timestamps, GroupLens' own
1-based ids as external ids) with ``item_meta`` = {item id: {"title",
"genres", "year"}} for the rated items, because serving shows titles and
ConvMF-style models need item text.

| set | ratings | items | encoding |
|---|---|---|---|
| ML-100K | ``u.data`` ``user<TAB>item<TAB>rating<TAB>ts`` | ``u.item`` (``|``, 24 fields) or RecBole ``ml-100k.item`` | latin-1 |
| ML-1M, ML-10M | ``ratings.dat`` ``user::item::rating::ts`` | ``movies.dat`` ``id::Title (Year)::G1|G2`` | latin-1 / utf-8 |
| ML-20M, ML-25M, ml-latest(-small) | ``ratings.csv`` | ``movies.csv`` (``movieId,title,genres``) | utf-8 |

Oddities handled (see the data README): latin-1 titles ("Misérables");
``u.item`` item 267 is titled ``unknown`` with no dates; the RecBole file
spells it ``unkonwn``; titles without a year or with a year range
(``(2006–2007)`` in ml-latest); ``(no genres listed)``; ML-1M/10M movie ids
with gaps and movies that nobody rated (left out of ``item_meta``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from training.data.errors import DataError
from training.data.files import build_interactions
from training.data.interactions import Interactions

ItemMeta = dict[str, dict[str, object]]

#: ``u.genre`` order: the 19 flag columns at the end of each ``u.item`` row.
ML100K_GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
ML100K_FOLDS = ("u1", "u2", "u3", "u4", "u5")
_NO_GENRES = "(no genres listed)"
# "Title (1995)", "Title (2006–2007)", "Title (2007-)": the last parenthesised year.
_TITLE_YEAR = re.compile(r"^(?P<title>.*?)\s*\((?P<year>\d{4})(?:\s*[-–]\s*(?:\d{4})?)?\)\s*$")


def parse_title(raw: str) -> tuple[str, int | None]:
    """Split ``"Heat (1995)"`` into ``("Heat", 1995)``; no year -> ``(title, None)``."""
    text = raw.strip()
    match = _TITLE_YEAR.match(text)
    if match is None or not match.group("title"):
        return text, None
    return match.group("title"), int(match.group("year"))


def parse_genres(raw: str | float | None, sep: str = "|") -> list[str]:
    """``"Action|Comedy"`` -> ``["Action", "Comedy"]``; empty or "(no genres listed)" -> []."""
    if not isinstance(raw, str) or raw.strip() in ("", _NO_GENRES):
        return []
    return [g for g in (part.strip() for part in raw.split(sep)) if g]


# --------------------------------------------------------------------------- ML-100K


def read_ml100k(directory: str | Path) -> Interactions:
    """All 100,000 ratings of ``u.data`` with item metadata from ``u.item`` / ``ml-100k.item``."""
    directory = Path(directory)
    ratings = _read_tab_ratings(_require(directory, "u.data"))
    return _ratings_frame_to_interactions(ratings, read_ml100k_items(directory))


def read_ml100k_folds(
    directory: str | Path, folds: Sequence[str] = ML100K_FOLDS
) -> list[tuple[Interactions, Interactions]]:
    """``(base, test)`` pairs for the GroupLens splits (``u1``..``u5``, or ``ua``/``ub``).

    Both parts of a pair share one id map built from their union, so a test
    user or item has the same index as in the base part.
    """
    directory = Path(directory)
    meta = read_ml100k_items(directory)
    pairs = []
    for fold in folds:
        base = _read_tab_ratings(_require(directory, f"{fold}.base"))
        test = _read_tab_ratings(_require(directory, f"{fold}.test"))
        both = _ratings_frame_to_interactions(pd.concat([base, test], ignore_index=True), meta)
        in_base = np.arange(len(both)) < len(base)
        pairs.append((both.subset(in_base), both.subset(~in_base)))
    return pairs


def read_ml100k_items(directory: str | Path) -> ItemMeta | None:
    """Item metadata from ``u.item``, else the RecBole ``ml-100k.item``, else ``None``."""
    directory = Path(directory)
    if (directory / "u.item").is_file():
        return _read_u_item(directory / "u.item", _ml100k_genres(directory))
    if (directory / "ml-100k.item").is_file():
        return read_recbole_items(directory / "ml-100k.item")
    return None


def _ml100k_genres(directory: Path) -> tuple[str, ...]:
    """Genre names from ``u.genre`` (``name|index`` lines), else the published list."""
    path = directory / "u.genre"
    if not path.is_file():
        return ML100K_GENRES
    by_index: dict[int, str] = {}
    for line in path.read_text(encoding="latin-1").splitlines():
        if line.strip():
            name, _, index = line.rpartition("|")
            by_index[int(index)] = name
    return tuple(by_index[i] for i in sorted(by_index))


def _read_u_item(path: Path, genres: tuple[str, ...]) -> ItemMeta:
    """Parse ``u.item``: ``id|title|release date|video release date|URL|19 genre flags``."""
    meta: ItemMeta = {}
    n_fields = 5 + len(genres)
    for line_no, line in enumerate(path.read_text(encoding="latin-1").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) != n_fields:
            raise DataError(
                f"{path}, line {line_no}: expected {n_fields} '|'-separated fields, found {len(fields)}"
            )
        title, year = parse_title(fields[1])
        if year is None:
            year = _release_year(fields[2])
        flags = fields[5:]
        meta[fields[0]] = {
            "title": title,
            "genres": [g for g, flag in zip(genres, flags, strict=True) if flag.strip() == "1"],
            "year": year,
        }
    return meta


def _release_year(release_date: str) -> int | None:
    """Year of a ``01-Jan-1995`` release date; empty (item 267) -> None."""
    try:
        return datetime.strptime(release_date.strip(), "%d-%b-%Y").year
    except ValueError:
        return None


def read_recbole_items(path: str | Path) -> ItemMeta:
    """RecBole atomic ``.item`` file: tab-separated, header of ``field:type`` columns.

    Uses ``item_id``, ``movie_title``, ``release_year`` and ``class`` (genres,
    space-separated); the title carries no year there.
    """
    path = Path(path)
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    if not lines:
        raise DataError(f"{path}: the file is empty")
    header = [h.split(":", 1)[0] for h in lines[0].split("\t")]
    if "item_id" not in header or "movie_title" not in header:
        raise DataError(f"{path}: header {lines[0]!r} lacks item_id:token / movie_title:token_seq")
    col = {name: i for i, name in enumerate(header)}
    meta: ItemMeta = {}
    for line_no, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != len(header):
            raise DataError(
                f"{path}, line {line_no}: expected {len(header)} tab-separated fields, found {len(fields)}"
            )
        title = fields[col["movie_title"]].strip()
        year = fields[col["release_year"]].strip() if "release_year" in col else ""
        genres = fields[col["class"]].split() if "class" in col else []
        meta[fields[col["item_id"]].strip()] = {
            # RecBole's copy misspells the placeholder title of item 267.
            "title": "unknown" if title == "unkonwn" else title,
            "genres": genres,
            "year": int(year) if year.isdigit() else None,
        }
    return meta


# --------------------------------------------------------------------------- ML-1M / ML-10M


def read_ml1m(directory: str | Path) -> Interactions:
    """ML-1M: ``ratings.dat`` + latin-1 ``movies.dat``."""
    return _read_dat_layout(Path(directory), movies_encoding="latin-1")


def read_ml10m(directory: str | Path) -> Interactions:
    """ML-10M (folder ``ml-10M100K``): same ``::`` layout, half-star ratings, utf-8 titles."""
    return _read_dat_layout(Path(directory), movies_encoding="utf-8")


def _read_dat_layout(directory: Path, movies_encoding: str) -> Interactions:
    ratings = _read_dat_ratings(_require(directory, "ratings.dat"))
    movies = directory / "movies.dat"
    meta = read_movies_dat(movies, movies_encoding) if movies.is_file() else None
    return _ratings_frame_to_interactions(ratings, meta)


def read_movies_dat(path: str | Path, encoding: str = "latin-1") -> ItemMeta:
    """``id::Title (Year)::Genre|Genre`` lines; undecodable bytes fall back to latin-1."""
    path = Path(path)
    raw = path.read_bytes()
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError:
        text = raw.decode("latin-1")  # every byte is valid latin-1: never fails
    meta: ItemMeta = {}
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        # Titles may contain "::"-free colons ("Star Wars: Episode IV"); split from both ends.
        item_id, sep, rest = line.partition("::")
        title_raw, sep2, genres = rest.rpartition("::")
        if not sep or not sep2:
            raise DataError(
                f"{path}, line {line_no}: expected 'id::Title (Year)::Genres', got {line!r}"
            )
        title, year = parse_title(title_raw)
        meta[item_id.strip()] = {"title": title, "genres": parse_genres(genres), "year": year}
    return meta


# --------------------------------------------------------------------------- ML-20M / 25M / latest


def read_ml_csv(directory: str | Path) -> Interactions:
    """ML-20M, ML-25M, ml-latest(-small): ``ratings.csv`` + ``movies.csv``."""
    directory = Path(directory)
    path = _require(directory, "ratings.csv")
    columns = {"userId": "int64", "movieId": "int64", "rating": "float32", "timestamp": "int64"}
    try:
        frame = pd.read_csv(path, usecols=list(columns), dtype=columns, engine="pyarrow")
    except Exception as exc:  # pyarrow and pandas raise several types for a bad file
        raise DataError(
            f"{path}: not a MovieLens ratings.csv with columns {', '.join(columns)} ({exc})"
        ) from exc
    frame.columns = ["user", "item", "rating", "ts"]
    movies = directory / "movies.csv"
    meta = read_movies_csv(movies) if movies.is_file() else None
    return _ratings_frame_to_interactions(frame, meta)


def read_movies_csv(path: str | Path) -> ItemMeta:
    """``movieId,title,genres`` (titles quoted when they hold commas)."""
    path = Path(path)
    try:
        frame = pd.read_csv(
            path, dtype={"movieId": str, "title": str, "genres": str}, keep_default_na=False
        )
    except Exception as exc:
        raise DataError(f"{path}: not a MovieLens movies.csv ({exc})") from exc
    missing = {"movieId", "title", "genres"} - set(frame.columns)
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
    meta: ItemMeta = {}
    for item_id, raw_title, genres in zip(
        frame["movieId"], frame["title"], frame["genres"], strict=True
    ):
        title, year = parse_title(raw_title)
        meta[item_id.strip()] = {"title": title, "genres": parse_genres(genres), "year": year}
    return meta


# --------------------------------------------------------------------------- shared


@dataclass(frozen=True)
class Layout:
    """How one named data set lies on disk: candidate folder names and its reader."""

    name: str
    folders: tuple[str, ...]  # folder names accepted under a data / cache dir, first = canonical
    ratings_file: str
    reader: Callable[[Path], Interactions]


LAYOUTS: dict[str, Layout] = {
    "ml-100k": Layout("ml-100k", ("ml-100k",), "u.data", read_ml100k),
    "ml-1m": Layout("ml-1m", ("ml-1m",), "ratings.dat", read_ml1m),
    "ml-10m": Layout("ml-10m", ("ml-10M100K", "ml-10m", "ml-10M"), "ratings.dat", read_ml10m),
    "ml-20m": Layout("ml-20m", ("ml-20m",), "ratings.csv", read_ml_csv),
    "ml-25m": Layout("ml-25m", ("ml-25m",), "ratings.csv", read_ml_csv),
    "ml-latest-small": Layout("ml-latest-small", ("ml-latest-small",), "ratings.csv", read_ml_csv),
    "ml-latest": Layout("ml-latest", ("ml-latest",), "ratings.csv", read_ml_csv),
}


def read_movielens(name: str, directory: str | Path) -> Interactions:
    """Read the named set (a key of ``LAYOUTS``) from the folder holding its files."""
    if name not in LAYOUTS:
        raise DataError(f"unknown MovieLens set {name!r}; known: {', '.join(LAYOUTS)}")
    return LAYOUTS[name].reader(Path(directory))


def _require(directory: Path, filename: str) -> Path:
    path = directory / filename
    if not path.is_file():
        raise DataError(f"{path}: file not found (expected the GroupLens layout in {directory})")
    return path


def _read_tab_ratings(path: Path) -> pd.DataFrame:
    """``u.data`` / fold files: ``user<TAB>item<TAB>rating<TAB>unix-ts``, no header."""
    return _read_ratings(path, sep="\t", usecols=[0, 1, 2, 3])


def _read_dat_ratings(path: Path) -> pd.DataFrame:
    """``user::item::rating::ts``: splitting on ``:`` keeps pandas' fast C parser
    (a multi-character separator forces the slow Python engine); the empty
    fields between the two colons are skipped by ``usecols``."""
    return _read_ratings(path, sep=":", usecols=[0, 2, 4, 6])


def _read_ratings(path: Path, sep: str, usecols: list[int]) -> pd.DataFrame:
    dtypes = dict(zip(usecols, ("int64", "int64", "float32", "int64"), strict=True))
    try:
        frame = pd.read_csv(path, sep=sep, header=None, usecols=usecols, dtype=dtypes)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty") from None
    except (pd.errors.ParserError, ValueError) as exc:
        raise DataError(
            f"{path}: not in the 'user{sep}item{sep}rating{sep}timestamp' layout ({exc})"
        ) from exc
    frame.columns = ["user", "item", "rating", "ts"]
    return frame


def _ratings_frame_to_interactions(frame: pd.DataFrame, meta: ItemMeta | None) -> Interactions:
    """Columns ``user, item, rating, ts`` -> explicit ``Interactions``; meta of rated items only."""
    if len(frame) == 0:
        raise DataError("the ratings file has no rows")
    data = build_interactions(
        frame["user"], frame["item"], frame["rating"], frame["ts"], explicit=True
    )
    if meta is None:
        return data
    return replace(data, item_meta={i: meta[i] for i in data.item_ids.ids if i in meta})
