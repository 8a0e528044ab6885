"""Item documents: tokenising, Sec. 4.1 preprocessing (hand-checked), plot matching."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from training.data import documents as D
from training.data.errors import DataError
from training.data.interactions import Interactions
from training.data.movielens import read_ml100k

# --------------------------------------------------------------------------- tokens


def test_tokenize_drops_stop_words_possessives_and_short_words() -> None:
    assert D.tokenize("The boy's toys, and Woody!") == ["boy", "toys", "woody"]
    assert D.tokenize("Don't PANIC: a 42-year-old café x") == [
        "dont",
        "panic",
        "42",
        "year",
        "old",
        "cafe",
    ]


def test_vocabulary_removes_corpus_stop_words_by_document_frequency() -> None:
    docs = ["apple banana", "apple cherry", "apple date"]  # apple: df 3/3 > 0.5
    assert D.build_vocabulary(docs, vocab_size=10, max_df=0.5) == ("banana", "cherry", "date")
    assert "apple" in D.build_vocabulary(docs, vocab_size=10, max_df=1.0)


def test_vocabulary_keeps_the_most_frequent_words_up_to_the_cap() -> None:
    docs = ["zebra zebra zebra yak", "yak yak wolf", "wolf vole", "quail"]
    # term frequencies: yak 3, zebra 3, wolf 2, vole 1, quail 1; ties alphabetical.
    assert D.build_vocabulary(docs, vocab_size=3, max_df=1.0) == ("yak", "zebra", "wolf")
    assert D.build_vocabulary(docs, vocab_size=5, max_df=1.0)[3:] == ("quail", "vole")


def test_encode_maps_to_one_based_indices_and_cuts_at_max_len() -> None:
    vocab = ("space", "alien", "ship")
    encoded = D.encode(
        ["The alien ship lands in space with another alien", "nothing known"], vocab, 3
    )
    assert encoded == [[2, 3, 1], []]  # stop words and out-of-vocabulary words dropped


def test_build_corpus_and_pad() -> None:
    corpus = D.build_corpus(["red fox red", "blue fox"], vocab_size=2, max_df=1.0, max_len=300)
    assert corpus.vocab == ("fox", "red")
    assert corpus.sequences == ((2, 1, 2), (1,))
    padded = D.pad(corpus.sequences, min_len=5)
    np.testing.assert_array_equal(padded, [[2, 1, 2, 0, 0], [1, 0, 0, 0, 0]])
    assert padded.dtype == np.int64


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: D.build_vocabulary(["a b"], vocab_size=0), "vocab_size"),
        (lambda: D.build_vocabulary(["a b"], max_df=0.0), "max_df"),
        (lambda: D.encode(["a b"], ("a",), max_len=0), "max_len"),
    ],
)
def test_bad_settings_are_named(call, message: str) -> None:
    with pytest.raises(DataError, match=message):
        call()


# --------------------------------------------------------------------------- titles


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Shawshank Redemption, The", "The Shawshank Redemption"),
        ("Postino, Il", "Il Postino"),
        ("Misérables, Les", "Les Miserables"),
        ("M*A*S*H", "MASH"),
        ("Mrs. Brown", "Mrs Brown"),
        ("Romeo & Juliet", "romeo and juliet"),
    ],
)
def test_normalize_title_makes_conventions_agree(a: str, b: str) -> None:
    assert D.normalize_title(a) == D.normalize_title(b)


def test_title_keys_try_the_parenthesised_alternative() -> None:
    assert D.title_keys("Seven (Se7en)") == ["seven se7en", "seven", "se7en"]


def _plot_file(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "movies_extrainfos.dat"
    path.write_bytes("\r\n".join(lines).encode("utf-8") + b"\r\n")
    return path


def _line(movie_id: int, title: str, year: int, plot: str) -> str:
    return f"{movie_id}::{title}::{year}::R::date::Drama::dir::writers::actors::{plot}::http://x"


def test_match_plots_by_title_and_year_with_one_year_slack(tmp_path: Path) -> None:
    path = _plot_file(
        tmp_path,
        [
            _line(1, "The Usual Suspects", 1995, "A lineup of crooks."),
            _line(2, "Heat", 1995, "A cop and a thief."),
            _line(3, "Heat", 1986, "A different Heat."),
            _line(4, "The Howling", 1980, "Werewolves."),
            _line(5, "No Plot Here", 1990, "N/A"),
        ],
    )
    meta = {
        "a": {"title": "Usual Suspects, The", "year": 1995},
        "b": {"title": "Heat", "year": 1995},
        "c": {"title": "Howling, The", "year": 1981},  # production vs release year
        "d": {"title": "No Plot Here", "year": 1990},
        "e": {"title": "unknown", "year": None},
    }
    found = D.match_plots(meta, D.read_plots(path))
    assert found == {"a": "A lineup of crooks.", "b": "A cop and a thief.", "c": "Werewolves."}


def test_read_plots_refuses_a_malformed_line(tmp_path: Path) -> None:
    path = _plot_file(tmp_path, [_line(1, "Heat", 1995, "x"), "2::Broken::1990"])
    with pytest.raises(DataError, match="line 2: expected 11"):
        D.read_plots(path)
    with pytest.raises(DataError, match="not found"):
        D.read_plots(tmp_path / "missing.dat")


def test_attach_plots_needs_titles(tmp_path: Path) -> None:
    data = Interactions.from_arrays(["u"], ["i"], [4.0])
    with pytest.raises(DataError, match="item_meta"):
        D.attach_plots(data, _plot_file(tmp_path, [_line(1, "Heat", 1995, "x")]))


def test_item_texts_in_index_order() -> None:
    meta = {"2": {"title": "B", "text": "second"}, "1": {"title": "A", "text": "  "}}
    data = Interactions.from_arrays(
        ["u", "u", "u"], ["1", "2", "3"], [4.0, 3.0, 5.0], item_meta=meta
    )
    assert D.item_texts(data) == [None, "second", None]


# --------------------------------------------------------------------------- real plots


def test_real_ml100k_titles_find_their_imdb_plots(data_dir: Path) -> None:
    data = read_ml100k(data_dir / "ml-100k")
    attached, report = D.attach_plots(data, data_dir / "ml-1m-plots" / "movies_extrainfos.dat")
    meta = attached.item_meta
    assert meta is not None
    assert "Woody" in str(meta["1"]["text"])  # Toy Story (1995)
    assert "Shawshank" in str(meta["64"]["text"])  # Shawshank Redemption, The (1994)
    assert "Keyser" in str(meta["12"]["text"])  # Usual Suspects, The (1995)
    assert "Luke Skywalker" in str(
        meta["50"]["text"]
    )  # Star Wars (1977) = "Episode IV - A New Hope"
    assert "text" not in meta["267"]  # the placeholder item titled "unknown"
    assert report.n_items == 1682
    assert report.item_rate > 0.97 and report.rating_rate > 0.98
