"""Item documents for text-aware models (ConvMF): plot matching and preprocessing.

Two jobs, both from Kim et al., "Convolutional Matrix Factorization for
Document Context-Aware Recommendation", RecSys 2016:

* **Matching.** The paper's item documents are IMDB plots of the MovieLens
  movies. Here they come from ``ml-1m-plots/movies_extrainfos.dat`` (MeLU's
  IMDB dump for ML-1M: ``id::title::year::rated::released::genres::director::
  writers::actors::plot::poster``, UTF-8, CRLF). Its ids are ML-1M ids and
  its titles are IMDB's ("The City of Lost Children", "Se7en"), while
  ML-100K titles follow GroupLens ("City of Lost Children, The",
  "Seven (Se7en)"). ``match_plots`` therefore matches by normalised title +
  year (articles, accents, punctuation, case and a parenthesised alternative
  title handled), first through ML-1M's ``movies.dat`` (same GroupLens title
  convention, same ids as the plot file) when it is at hand, then against the
  IMDB titles, then with the year off by one (release vs. production year).
* **Preprocessing** (paper Sec. 4.1): stop words removed, corpus-specific
  stop words (document frequency > 0.5) removed, vocabulary = the 8,000 most
  frequent remaining words, non-vocabulary words dropped, documents cut to
  300 words, then mapped to index sequences (0 = padding, word i -> i + 1).
  The authors' code builds the same vocabulary with scikit-learn's
  ``TfidfVectorizer(max_df=0.5, stop_words="english", max_features=8000)``;
  the stop-word list below is a small built-in one (no downloads).
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.data.errors import DataError
from training.data.interactions import Interactions

_STOP_WORDS_TEXT = """
    a about above after again against all also am an and any are aren as at be because been
    before being below between both but by can cannot could couldn did didn do does doesn doing
    don down during each even ever every few for from further get gets got had hadn has hasn
    have haven having he her here hers herself him himself his how however if in into is isn it
    its itself just ll may me might more most much must mustn my myself no nor not now of off on
    once one only or other ought our ours ourselves out over own re same shall shan she should
    shouldn so some still such than that the their theirs them themselves then there these they
    this those through thus to too under until up upon us ve very was wasn we were weren what
    when where whether which while who whom whose why will with within without won would
    wouldn yet you your yours yourself yourselves
"""
#: A compact English stop-word list (function words, auxiliaries, pronouns).
STOP_WORDS: frozenset[str] = frozenset(_STOP_WORDS_TEXT.split())
#: Leading/trailing articles that title conventions move around ("Usual Suspects, The").
_ARTICLES = ("the", "a", "an", "il", "la", "le", "les", "l", "el", "das", "der", "die", "lo")
_TOKEN = re.compile(r"[a-z0-9]+")
_TRAILING_ARTICLE = re.compile(r",\s*(" + "|".join(_ARTICLES) + r")'?\s*$", re.IGNORECASE)
_PAREN = re.compile(r"\(([^()]*)\)")
_MISSING = ("", "N/A")


# --------------------------------------------------------------------------- tokens


def tokenize(text: str) -> list[str]:
    """Lower-cased alphanumeric words of length >= 2, stop words removed.

    Possessive "'s" and apostrophes go first ("Andy's" -> "andy", "don't" ->
    "dont"); accents are folded so "Café" and "Cafe" are one word.
    """
    folded = _fold_accents(text).lower()
    folded = re.sub(r"'s\b", "", folded.replace("\u2019", "'")).replace("'", "")
    return [w for w in _TOKEN.findall(folded) if len(w) >= 2 and w not in STOP_WORDS]


def _fold_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


@dataclass(frozen=True)
class Corpus:
    """A vocabulary and every document as a word-index sequence (1-based; 0 pads)."""

    vocab: tuple[str, ...]
    sequences: tuple[tuple[int, ...], ...]


def build_vocabulary(
    docs: Sequence[str], vocab_size: int = 8000, max_df: float = 0.5
) -> tuple[str, ...]:
    """The ``vocab_size`` most frequent words after stop words and df > ``max_df`` removal.

    Ties in frequency break alphabetically, so a vocabulary depends only on
    the documents. ``max_df`` is a share of the documents (paper: 0.5).
    """
    if vocab_size < 1:
        raise DataError(f"vocab_size must be >= 1, got {vocab_size}")
    if not 0.0 < max_df <= 1.0:
        raise DataError(f"max_df must be in (0, 1], got {max_df}")
    tokenised = [tokenize(d) for d in docs]
    df = Counter(w for words in tokenised for w in set(words))
    tf = Counter(w for words in tokenised for w in words)
    limit = max_df * len(docs)
    kept = [w for w in tf if df[w] <= limit]
    kept.sort(key=lambda w: (-tf[w], w))
    return tuple(kept[:vocab_size])


def encode(docs: Iterable[str], vocab: Sequence[str], max_len: int = 300) -> list[list[int]]:
    """Each document -> indices of its in-vocabulary words (i + 1), cut to ``max_len``."""
    if max_len < 1:
        raise DataError(f"max_len must be >= 1, got {max_len}")
    index = {w: i + 1 for i, w in enumerate(vocab)}
    return [[index[w] for w in tokenize(d) if w in index][:max_len] for d in docs]


def build_corpus(
    docs: Sequence[str], vocab_size: int = 8000, max_df: float = 0.5, max_len: int = 300
) -> Corpus:
    """Sec. 4.1 preprocessing of ``docs``: vocabulary, then index sequences."""
    vocab = build_vocabulary(docs, vocab_size, max_df)
    return Corpus(vocab, tuple(tuple(s) for s in encode(docs, vocab, max_len)))


def pad(sequences: Sequence[Sequence[int]], min_len: int = 1) -> np.ndarray:
    """(N, L) int64 right-padded with 0, L = max(longest sequence, ``min_len``)."""
    length = max([min_len, *(len(s) for s in sequences)])
    out = np.zeros((len(sequences), length), dtype=np.int64)
    for row, seq in enumerate(sequences):
        out[row, : len(seq)] = seq
    return out


# --------------------------------------------------------------------------- plots


@dataclass(frozen=True)
class Plot:
    """One line of ``movies_extrainfos.dat`` that has a plot."""

    movie_id: str
    title: str
    year: int | None
    plot: str


def read_plots(path: str | Path) -> list[Plot]:
    """Movies with a plot from a MeLU ``movies_extrainfos.dat`` (11 ``::`` fields)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"plot file not found: {path}")
    plots = []
    text = path.read_text(encoding="utf-8")
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("::")
        if len(fields) != 11:
            raise DataError(
                f"{path}, line {line_no}: expected 11 '::'-separated fields "
                f"(id::title::year::...::plot::poster), found {len(fields)}"
            )
        plot = fields[9].strip()
        if plot in _MISSING:
            continue
        year = fields[2].strip()
        plots.append(Plot(fields[0].strip(), fields[1].strip(), _year(year), plot))
    return plots


def _year(raw: str) -> int | None:
    digits = raw[:4]
    return int(digits) if digits.isdigit() else None


def normalize_title(title: str) -> str:
    """Comparable form: accents folded, lower case, articles dropped, punctuation gone.

    "Shawshank Redemption, The", "The Shawshank Redemption" and
    "shawshank redemption" all give "shawshank redemption".
    """
    text = _fold_accents(title).strip()
    text = _TRAILING_ARTICLE.sub("", text).lower().replace("&", " and ")
    words = re.findall(r"[a-z0-9]+", re.sub(r"['*.]", "", text))  # "M*A*S*H", "L.A."
    while len(words) > 1 and words[0] in _ARTICLES:
        words = words[1:]
    return " ".join(words)


def title_keys(title: str) -> list[str]:
    """Normalised variants of a title: as is, without and inside its parentheses.

    "Seven (Se7en)" -> ["seven se7en", "seven", "se7en"]; the alternative
    title in parentheses is often the one IMDB uses.
    """
    keys = [normalize_title(title)]
    outside = _PAREN.sub(" ", title)
    keys.append(normalize_title(outside))
    keys.extend(normalize_title(inner) for inner in _PAREN.findall(title))
    return [k for k in dict.fromkeys(keys) if k]


class _TitleIndex:
    """(normalised title, year) -> ids, for exact and year +/- 1 lookups."""

    def __init__(self, entries: Iterable[tuple[str, str, int | None]]) -> None:
        self._by_key: dict[tuple[str, int | None], set[str]] = {}
        for movie_id, title, year in entries:
            # Segments of "Star Wars: Episode V - The Empire Strikes Back" stand in for
            # the short titles other catalogues use ("Empire Strikes Back, The").
            segments = [s for s in re.split(r":|\s-\s", title) if s.strip()]
            variants = [title, *segments] if len(segments) > 1 else [title]
            for key in (k for v in variants for k in title_keys(v)):
                self._by_key.setdefault((key, year), set()).add(movie_id)

    def find(self, title: str, year: int | None, slack: int) -> str | None:
        """The single id matching a key of ``title`` within ``slack`` years, else None."""
        years = [year] if year is None or slack == 0 else [year - slack, year + slack]
        for key in title_keys(title):
            hits = {i for y in years for i in self._by_key.get((key, y), set())}
            if len(hits) == 1:
                return hits.pop()
        return None


@dataclass(frozen=True)
class MatchReport:
    """How many items found a plot, and how many ratings those items carry."""

    n_items: int
    n_matched: int
    n_ratings: int
    n_ratings_matched: int

    @property
    def item_rate(self) -> float:
        return self.n_matched / max(self.n_items, 1)

    @property
    def rating_rate(self) -> float:
        return self.n_ratings_matched / max(self.n_ratings, 1)


def match_plots(
    item_meta: dict[str, dict[str, object]],
    plots: Sequence[Plot],
    bridge_titles: dict[str, tuple[str, int | None]] | None = None,
) -> dict[str, str]:
    """External item id -> plot text, for the items whose title + year match a plot.

    ``bridge_titles`` (ML-1M ``movies.dat``: id -> (title, year)) shares the
    plot file's ids and GroupLens' title convention; it is tried first, then
    the plot file's own (IMDB) titles, each first with the exact year, then
    with the year off by one.
    """
    by_id = {p.movie_id: p for p in plots}
    indexes = []
    if bridge_titles:
        indexes.append(_TitleIndex((i, t, y) for i, (t, y) in bridge_titles.items() if i in by_id))
    indexes.append(_TitleIndex((p.movie_id, p.title, p.year) for p in plots))
    found: dict[str, str] = {}
    for item_id, meta in item_meta.items():
        title, year = meta.get("title"), meta.get("year")
        if not isinstance(title, str) or not title or title == "unknown":
            continue
        year = year if isinstance(year, int) else None
        for slack in (0, 1):
            hit = next((h for ix in indexes if (h := ix.find(title, year, slack))), None)
            if hit is not None:
                found[item_id] = by_id[hit].plot
                break
    return found


def read_bridge_titles(movies_dat: str | Path) -> dict[str, tuple[str, int | None]]:
    """ML-1M ``movies.dat`` as id -> (title, year), via the MovieLens reader."""
    from training.data.movielens import read_movies_dat

    return {
        i: (str(m["title"]), m["year"] if isinstance(m["year"], int) else None)
        for i, m in read_movies_dat(movies_dat).items()
    }


def attach_plots(
    interactions: Interactions, plots_path: str | Path, movies_dat: str | Path | None = None
) -> tuple[Interactions, MatchReport]:
    """A copy whose ``item_meta`` has a ``text`` field (the plot) for every matched item.

    ``movies_dat`` defaults to ``ml-1m/movies.dat`` next to the plot folder
    when that file exists. Unmatched items keep their metadata without text.
    """
    meta = interactions.item_meta
    if not meta:
        raise DataError("attach_plots needs item_meta with titles and years; this data has none")
    plots_path = Path(plots_path)
    if movies_dat is None:
        candidate = plots_path.parent.parent / "ml-1m" / "movies.dat"
        movies_dat = candidate if candidate.is_file() else None
    bridge = read_bridge_titles(movies_dat) if movies_dat is not None else None
    texts = match_plots(meta, read_plots(plots_path), bridge)
    new_meta = {i: ({**m, "text": texts[i]} if i in texts else dict(m)) for i, m in meta.items()}
    rated = np.bincount(interactions.items, minlength=interactions.n_items)
    has_text = np.array([i in texts for i in interactions.item_ids.ids], dtype=bool)
    report = MatchReport(
        n_items=interactions.n_items,
        n_matched=int(has_text.sum()),
        n_ratings=len(interactions),
        n_ratings_matched=int(rated[has_text].sum()),
    )
    return dataclasses.replace(interactions, item_meta=new_meta), report


def item_texts(interactions: Interactions) -> list[str | None]:
    """(I,) the ``text`` of each item in index order; None where it has none."""
    meta = interactions.item_meta or {}
    out: list[str | None] = []
    for item_id in interactions.item_ids.ids:
        text = meta.get(item_id, {}).get("text")
        out.append(text if isinstance(text, str) and text.strip() else None)
    return out


if __name__ == "__main__":  # python -m training.data.documents [DATA_DIR]: the match rate
    import os
    import sys

    from training.data.movielens import read_ml100k

    root = Path(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("GENREC_DATA_DIR", "."))
    _, rep = attach_plots(
        read_ml100k(root / "ml-100k"), root / "ml-1m-plots" / "movies_extrainfos.dat"
    )
    print(
        f"ML-100K items with a plot: {rep.n_matched}/{rep.n_items} ({rep.item_rate:.1%}); "
        f"ratings on them: {rep.n_ratings_matched}/{rep.n_ratings} ({rep.rating_rate:.1%})"
    )
