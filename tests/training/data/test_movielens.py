"""MovieLens readers: the real ML-100K against the published counts, and small
files written in the ML-1M / ML-10M / ML-20M / ML-25M layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from training.data.errors import DataError
from training.data.interactions import Interactions
from training.data.movielens import (
    parse_genres,
    parse_title,
    read_ml1m,
    read_ml10m,
    read_ml100k,
    read_ml100k_folds,
    read_ml_csv,
    read_movielens,
    read_recbole_items,
)

# --------------------------------------------------------------------------- title / genres


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Toy Story (1995)", ("Toy Story", 1995)),
        ("Misérables, Les (1995) ", ("Misérables, Les", 1995)),
        ("City of Lost Children, The (Cité des enfants perdus, La) (1995)", ("City of Lost Children, The (Cité des enfants perdus, La)", 1995)),
        ("Babylon 5", ("Babylon 5", None)),
        ("Fawlty Towers (1975–1979)", ("Fawlty Towers", 1975)),
        ("Big Bang Theory, The (2007-)", ("Big Bang Theory, The", 2007)),
        ("unknown", ("unknown", None)),
        ("1984 (1956)", ("1984", 1956)),
    ],
)  # fmt: skip
def test_parse_title(raw: str, expected: tuple[str, int | None]) -> None:
    assert parse_title(raw) == expected


def test_parse_genres() -> None:
    assert parse_genres("Action|Sci-Fi") == ["Action", "Sci-Fi"]
    assert parse_genres("(no genres listed)") == []
    assert parse_genres("") == []


# --------------------------------------------------------------------------- real ML-100K


def test_real_ml100k_counts_and_metadata(data_dir: Path) -> None:
    data = read_ml100k(data_dir / "ml-100k")
    assert (len(data), data.n_users, data.n_items) == (100_000, 943, 1_682)
    assert data.explicit
    values, counts = np.unique(data.ratings, return_counts=True)
    assert dict(zip(values.tolist(), counts.tolist(), strict=True)) == {
        1.0: 6_110, 2.0: 11_370, 3.0: 27_145, 4.0: 34_174, 5.0: 21_201,
    }  # fmt: skip
    meta = data.item_meta
    assert meta is not None and len(meta) == 1_682
    assert meta["1"] == {
        "title": "Toy Story",
        "genres": ["Animation", "Children's", "Comedy"],
        "year": 1995,
    }
    assert meta["543"]["title"] == "Misérables, Les"  # latin-1, not mojibake
    assert meta["267"] == {"title": "unknown", "genres": ["unknown"], "year": None}
    # The first u.data line is "196 242 3 881250949".
    first = data.user_ids.index("196"), data.item_ids.index("242")
    rows = np.flatnonzero((data.users == first[0]) & (data.items == first[1]))
    assert data.ratings[rows].tolist() == [3.0] and data.timestamps[rows].tolist() == [881250949]


def test_real_ml100k_matches_from_arrays(data_dir: Path) -> None:
    """The vectorised builder gives exactly what ``Interactions.from_arrays`` gives."""
    raw = pd.read_csv(data_dir / "ml-100k" / "u.data", sep="\t", header=None)
    reference = Interactions.from_arrays(raw[0], raw[1], raw[2], raw[3])
    data = read_ml100k(data_dir / "ml-100k")
    assert data.user_ids == reference.user_ids and data.item_ids == reference.item_ids
    assert data.fingerprint() == reference.fingerprint()


def test_real_ml100k_folds(data_dir: Path) -> None:
    folds = read_ml100k_folds(data_dir / "ml-100k")
    assert len(folds) == 5
    full = read_ml100k(data_dir / "ml-100k")
    for base, test in folds:
        assert (len(base), len(test)) == (80_000, 20_000)
        assert base.user_ids is test.user_ids and base.item_ids is test.item_ids
        pairs_base = set(zip(base.users.tolist(), base.items.tolist(), strict=True))
        pairs_test = set(zip(test.users.tolist(), test.items.tolist(), strict=True))
        assert not pairs_base & pairs_test
        # base ∪ test is u.data: the union's id maps are u.data's.
        assert base.user_ids == full.user_ids and base.item_ids == full.item_ids
    ua, ub = read_ml100k_folds(data_dir / "ml-100k", folds=("ua", "ub"))
    for base, test in (ua, ub):
        assert (len(base), len(test)) == (90_570, 9_430)
        assert np.bincount(test.users, minlength=test.n_users).tolist() == [10] * 943


def test_ml100k_recbole_items_when_u_item_is_absent(data_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "u.data").write_bytes((data_dir / "ml-100k" / "u.data").read_bytes())
    (tmp_path / "ml-100k.item").write_bytes((data_dir / "ml-100k" / "ml-100k.item").read_bytes())
    meta = read_ml100k(tmp_path).item_meta
    assert meta is not None and len(meta) == 1_682
    assert meta["1"] == {
        "title": "Toy Story",
        "genres": ["Animation", "Children's", "Comedy"],
        "year": 1995,
    }
    assert meta["267"] == {"title": "unknown", "genres": ["unknown"], "year": None}


def test_ml100k_without_item_file_has_no_meta(tmp_path: Path) -> None:
    (tmp_path / "u.data").write_text("1\t10\t4\t100\n2\t10\t3\t200\n1\t20\t5\t300\n")
    data = read_ml100k(tmp_path)
    assert data.item_meta is None and len(data) == 3


def test_recbole_items_bad_header(tmp_path: Path) -> None:
    path = tmp_path / "x.item"
    path.write_text("id:token\tname:token_seq\n1\tA\n")
    with pytest.raises(DataError, match="item_id"):
        read_recbole_items(path)


# --------------------------------------------------------------------------- ML-1M / ML-10M


def _write_dat_set(folder: Path, movies: str, encoding: str) -> None:
    folder.mkdir()
    (folder / "ratings.dat").write_text(
        "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n10::3952::2::978200000\n"
    )
    (folder / "movies.dat").write_bytes(movies.encode(encoding))


def test_ml1m_layout_latin1(tmp_path: Path) -> None:
    movies = (
        "661::James and the Giant Peach (1996)::Animation|Children's|Musical\n"
        "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
        "3952::Contender, The (2000)::Drama|Thriller\n"
        "3000::Misérables, Les (1998)::Drama\n"  # listed, never rated: not in item_meta
    )
    _write_dat_set(tmp_path / "ml-1m", movies, "latin-1")
    data = read_ml1m(tmp_path / "ml-1m")
    assert (len(data), data.n_users, data.n_items) == (4, 3, 3)
    assert data.user_ids.ids == ("1", "2", "10") and data.item_ids.ids == ("661", "1193", "3952")
    assert data.item_meta == {
        "661": {"title": "James and the Giant Peach", "genres": ["Animation", "Children's", "Musical"], "year": 1996},
        "1193": {"title": "One Flew Over the Cuckoo's Nest", "genres": ["Drama"], "year": 1975},
        "3952": {"title": "Contender, The", "genres": ["Drama", "Thriller"], "year": 2000},
    }  # fmt: skip
    row = np.flatnonzero(data.items == data.item_ids.index("3952"))[0]
    assert data.ratings[row] == 2.0 and data.timestamps[row] == 978200000


def test_ml10m_layout_half_stars_and_colons_in_titles(tmp_path: Path) -> None:
    folder = tmp_path / "ml-10M100K"
    folder.mkdir()
    (folder / "ratings.dat").write_text("1::122::5::838985046\n1::260::3.5::838983525\n")
    (folder / "movies.dat").write_text(
        "122::Boomerang (1992)::Comedy|Romance\n"
        "260::Star Wars: Episode IV - A New Hope (a.k.a. Star Wars) (1977)::Action|Adventure|Sci-Fi\n",
        encoding="utf-8",
    )
    data = read_ml10m(folder)
    assert sorted(data.ratings.tolist()) == [3.5, 5.0]
    assert data.item_meta is not None
    assert data.item_meta["260"]["title"] == "Star Wars: Episode IV - A New Hope (a.k.a. Star Wars)"
    assert data.item_meta["260"]["year"] == 1977


def test_ml10m_movies_not_utf8_fall_back_to_latin1(tmp_path: Path) -> None:
    _write_dat_set(tmp_path / "ml-10m", "1193::Misérables, Les (1995)::Drama\n", "latin-1")
    meta = read_ml10m(tmp_path / "ml-10m").item_meta
    assert meta is not None and meta["1193"]["title"] == "Misérables, Les"


def test_dat_ratings_malformed_line(tmp_path: Path) -> None:
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    (folder / "ratings.dat").write_text("1::10::5::100\n2::x::4::200\n")
    with pytest.raises(DataError, match=r"ratings\.dat"):
        read_ml1m(folder)


def test_missing_ratings_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"ratings\.dat: file not found"):
        read_ml1m(tmp_path)
    with pytest.raises(DataError, match="unknown MovieLens set"):
        read_movielens("ml-2m", tmp_path)


# --------------------------------------------------------------------------- ML-20M / ML-25M


@pytest.mark.parametrize("folder_name", ["ml-20m", "ml-25m"])
def test_csv_layouts(tmp_path: Path, folder_name: str) -> None:
    folder = tmp_path / folder_name
    folder.mkdir()
    (folder / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\r\n1,296,5.0,1147880044\r\n1,306,3.5,1147868817\r\n"
        "3,296,0.5,1439472215\r\n"
    )
    (folder / "movies.csv").write_text(
        "movieId,title,genres\n"
        '296,"Pulp Fiction, The (1994)",Comedy|Crime|Drama|Thriller\n'
        "306,Three Colors: Red (Trois couleurs: Rouge) (1994),Drama\n"
        "209171,Women of Devil's Island (1962),(no genres listed)\n"
    )
    data = read_movielens(folder_name, folder)
    assert (len(data), data.n_users, data.n_items) == (3, 2, 2)
    assert data.ratings.dtype == np.float32 and sorted(data.ratings.tolist()) == [0.5, 3.5, 5.0]
    assert data.item_meta == {
        "296": {"title": "Pulp Fiction, The", "genres": ["Comedy", "Crime", "Drama", "Thriller"], "year": 1994},
        "306": {"title": "Three Colors: Red (Trois couleurs: Rouge)", "genres": ["Drama"], "year": 1994},
    }  # fmt: skip


def test_csv_layout_wrong_columns(tmp_path: Path) -> None:
    (tmp_path / "ratings.csv").write_text("user,item,stars\n1,2,3\n")
    with pytest.raises(DataError, match=r"ratings\.csv: not a MovieLens ratings\.csv"):
        read_ml_csv(tmp_path)
