"""The item catalog: the service's own item metadata, and new items served from their text.

Kim et al., "Convolutional Matrix Factorization for Document Context-Aware
Recommendation" (RecSys 2016), eq. 9: an item without ratings has
v_j = cnn(W, X_j). So when an item with text but no ratings enters the
catalog (``PUT /v1/items/{id}`` or ``genrec items import``) and the loaded
model is text-aware (its scorer has ``item_vectors_from_text``), its row is
computed once from the text and appended to the model's item table — no
retraining. Responses flag such items ``from_text``.

How serving picks items up (``CatalogSync``):

* Copy-on-write: an extension builds a new ``LoadedModel`` (item table V with
  the new rows, item id map, titles, popularity and the history's width all
  grown together) and swaps the reference through
  ``ModelHolder.replace_if_current``; requests holding the old object finish
  on it. Indices are append-only, so an item keeps its index in later extensions.
* Hot swap: ``ModelHolder.on_load`` is ``CatalogSync.apply``, so a newly
  promoted version gets every catalog item with text that its artifact lacks
  before it serves.
* Other processes: each server polls the items table at its reload interval
  (keyset on ``updated_at``, re-reading a short look-back window because a
  transaction may commit after a later one), keeps the catalog's texts in
  memory and re-applies them to any loaded model that has not seen them.

A model that is not text-aware cannot place an item nobody interacted with:
such a catalog item is not recommendable by it (``GET /v1/items/{id}`` still
returns it, with an empty ``serving`` list for that model). An item the
artifact already knows keeps its trained row; a text change only re-scores
items that were scored from text. Clearing the text of such an item gives it
the row of an empty document (the prior mean of an item without one).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import threading
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp
import torch
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app.core.db import make_engine, make_sessionmaker, session_scope, upgrade_database
from app.repository import ItemRow, NewItem, get_item, items_changed_since, upsert_items
from app.schemas_catalog import MAX_ATTRIBUTES_BYTES, MAX_TEXT, MAX_TITLE
from app.serving.holder import ModelHolder
from app.serving.loaded import LoadedModel
from training.models.base import Scorer

log = logging.getLogger(__name__)

#: Documents per CNN call when scoring catalog texts.
TEXT_BATCH = 256


class CatalogError(ValueError):
    """A catalog item breaks a rule (id, sizes, attributes); the message says which."""


# --------------------------------------------------------------------------- validation


def validate_item(
    item_id: str,
    title: str | None,
    text: str | None,
    attributes: dict[str, Any] | None,
    max_id_length: int = 256,
) -> NewItem:
    """The one rule set of PUT and import; empty title/text mean none."""
    if not item_id.strip():
        raise CatalogError("item_id must be a non-empty string")
    if len(item_id) > max_id_length:
        raise CatalogError(
            f"item_id is {len(item_id)} characters long; the limit is {max_id_length}"
        )
    if title is not None and len(title) > MAX_TITLE:
        raise CatalogError(f"title is {len(title)} characters long; the limit is {MAX_TITLE}")
    if text is not None and len(text) > MAX_TEXT:
        raise CatalogError(f"text is {len(text)} characters long; the limit is {MAX_TEXT}")
    for what, value in (("item_id", item_id), ("title", title), ("text", text)):
        if value is not None and "\x00" in value:  # Postgres text cannot hold NUL
            raise CatalogError(f"{what} contains a NUL character")
    attributes = attributes or {}
    try:
        encoded = json.dumps(attributes, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise CatalogError(f"attributes must be plain JSON: {exc}") from None
    if "\\u0000" in encoded:
        raise CatalogError("attributes contain a NUL character")
    size = len(encoded.encode())
    if size > MAX_ATTRIBUTES_BYTES:
        raise CatalogError(
            f"attributes are {size} bytes as JSON; the limit is {MAX_ATTRIBUTES_BYTES}"
        )
    return NewItem(item_id, title or None, text or None, attributes)


def save_items(sessions: sessionmaker[Session], items: Sequence[NewItem]) -> dict[str, str]:
    """Upsert ``items`` in one transaction; per id "created" / "updated" / "unchanged".

    Two writers creating the same new id at once: the loser's INSERT hits the
    primary key; one retry then finds the row and updates it.
    """
    try:
        with session_scope(sessions) as session:
            return upsert_items(session, items, datetime.now(UTC))
    except IntegrityError:
        with session_scope(sessions) as session:
            return upsert_items(session, items, datetime.now(UTC))


def read_item(sessions: sessionmaker[Session], item_id: str) -> ItemRow | None:
    with session_scope(sessions) as session:
        return get_item(session, item_id)


class FileRecord(Protocol):
    """What ``import_records`` reads of a file record (``training.data.catalog_file``).

    Read-only properties, so that frozen dataclasses (``CatalogRecord``) match.
    """

    @property
    def item_id(self) -> str: ...
    @property
    def title(self) -> str | None: ...
    @property
    def text(self) -> str | None: ...
    @property
    def attributes(self) -> dict[str, Any]: ...
    @property
    def line(self) -> int: ...


def import_records(
    database_url: str,
    records: Sequence[FileRecord],
    source: str,
    max_id_length: int = 256,
    migrate: bool = True,
) -> dict[str, int]:
    """``genrec items import``: validate every record, then write all in one transaction.

    All or nothing: the first bad record raises ``CatalogError`` naming
    ``source`` and its line before anything is written. Running servers pick
    the items up at their next reload poll. Returns counts per outcome.
    """
    items = []
    for record in records:
        try:
            items.append(
                validate_item(
                    record.item_id, record.title, record.text, record.attributes, max_id_length
                )
            )
        except CatalogError as exc:
            raise CatalogError(f"{source}, line {record.line}: {exc}") from None
    where = make_url(database_url).render_as_string(hide_password=True)
    engine = make_engine(database_url)
    try:
        if migrate:
            upgrade_database(database_url)
        outcome = save_items(make_sessionmaker(engine), items)
    except SQLAlchemyError as exc:
        raise CatalogError(f"cannot write the catalog to {where}: {exc}") from None
    finally:
        engine.dispose()
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    for result in outcome.values():
        counts[result] += 1
    return counts


# --------------------------------------------------------------------------- extension


@dataclass(frozen=True)
class TextItem:
    """A catalog item with (or formerly with) text; ``stamp`` identifies its revision."""

    item_id: str
    title: str | None
    text: str | None
    stamp: str  # updated_at, ISO

    @classmethod
    def from_row(cls, row: ItemRow) -> TextItem:
        return cls(row.item_id, row.title, row.text, row.updated_at.isoformat())


def is_text_aware(scorer: Scorer) -> bool:
    """True when the scorer can give a new item's row from its text (ConvMF)."""
    return callable(getattr(scorer, "item_vectors_from_text", None))


def extend_model(model: LoadedModel, items: Iterable[TextItem]) -> LoadedModel:
    """``model`` with ``items`` scored from text: new ones appended, changed ones refreshed.

    Returns ``model`` itself when it is not text-aware or nothing changes;
    otherwise a new object (the old one is left untouched for in-flight requests).
    """
    if not is_text_aware(model.scorer):
        return model
    added: list[TextItem] = []
    refreshed: list[tuple[int, TextItem]] = []
    for item in items:
        index = model.item_index.get(item.item_id)
        if index is None:
            if item.text:
                added.append(item)
        elif index in model.from_text and model.from_text[index] != item.stamp:
            refreshed.append((index, item))
    if not added and not refreshed:
        return model
    vectors = text_vectors(
        model.scorer, [it.text or "" for it in added + [r for _, r in refreshed]]
    )
    return _grown(model, added, refreshed, vectors)


def text_vectors(scorer: Scorer, docs: list[str]) -> torch.Tensor:
    """(n, k) cnn(W, X_j) of ``docs`` with the scorer's own vocabulary, in batches."""
    encode: Callable[[list[str]], torch.Tensor] = scorer.item_vectors_from_text  # type: ignore[attr-defined]
    with torch.inference_mode():
        parts = [encode(docs[i : i + TEXT_BATCH]) for i in range(0, len(docs), TEXT_BATCH)]
    return torch.cat(parts).float()


def _grown(
    model: LoadedModel,
    added: list[TextItem],
    refreshed: list[tuple[int, TextItem]],
    vectors: torch.Tensor,
) -> LoadedModel:
    """The copy-on-write extension: every item-indexed structure grows by ``len(added)``."""
    name = item_table_name(model.scorer, vectors.shape[1])
    old = model.scorer.t[name]  # (I, k)
    table = torch.cat([old, vectors[: len(added)].to(old)])  # (I + n, k): new memory
    if refreshed:
        rows = torch.tensor([i for i, _ in refreshed], device=table.device)
        table[rows] = vectors[len(added) :].to(table)
    n_items = table.shape[0]
    scorer = copy.copy(model.scorer)  # shares the CNN and every other tensor
    scorer.t = {**model.scorer.t, name: table}
    scorer.config = {**model.scorer.config, "n_items": n_items}

    item_ids = model.item_ids + [it.item_id for it in added]
    titles = list(model.titles) + [it.title for it in added]
    from_text = dict(model.from_text)
    for index, item in [(model.n_items + n, it) for n, it in enumerate(added)] + refreshed:
        from_text[index] = item.stamp
        titles[index] = item.title
    history = model.history
    return dataclasses.replace(
        model,
        scorer=scorer,
        item_index={item: i for i, item in enumerate(item_ids)},
        item_ids=item_ids,
        # New items have no training interactions: empty columns, zero popularity.
        history=sp.csr_matrix(
            (history.data, history.indices, history.indptr), shape=(history.shape[0], n_items)
        ),
        popularity=np.concatenate([model.popularity, np.zeros(len(added), np.float32)]),
        titles=titles,
        from_text=from_text,
        extension=model.extension + 1,
        _similarity={},  # similarity index is over the old table; rebuilt lazily
    )


def item_table_name(scorer: Scorer, width: int) -> str:
    """Name of the (I, D) item table that rows from ``item_vectors_from_text`` extend.

    The text-aware contract (ConvMF's serving card): those rows have the
    layout of the ``items`` tensor, ready to append. A scorer may name another
    table with an ``item_table`` attribute.
    """
    name = str(getattr(scorer, "item_table", "items"))
    table = scorer.t.get(name)
    if table is None or table.ndim != 2 or table.shape[1] != width:
        shape = None if table is None else tuple(table.shape)
        raise CatalogError(
            f"model '{scorer.name}': rows from text have width {width} but its item table "
            f"'{name}' has shape {shape}; cannot append them"
        )
    return name


# --------------------------------------------------------------------------- sync


class CatalogSync:
    """Keeps this process's loaded models in step with the items table (see module doc)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        holder: ModelHolder,
        interval_s: float,
        lookback_s: float = 10.0,
        page_size: int = 1000,
    ) -> None:
        self.sessions = sessions
        self.holder = holder
        self.interval_s = interval_s
        self.lookback = timedelta(seconds=lookback_s)
        self.page_size = page_size
        self._texts: dict[str, TextItem] = {}  # catalog items that have (had) text
        self._revision = 0  # bumped whenever _texts changes
        self._watermark: datetime | None = None  # newest updated_at read
        self._applied: dict[str, tuple[weakref.ref[LoadedModel], int]] = {}
        self._lock = threading.RLock()  # one refresh/apply at a time
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        """Hook into the holder, apply the catalog to what is loaded, start polling."""
        self.holder.on_load = self.apply
        self.sync_now()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="catalog-sync", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, 2 * self.interval_s))
            self._thread = None
        self.holder.on_load = lambda model: model

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sync_now()

    def sync_now(self) -> None:
        """Read catalog changes, then extend every loaded model that misses some."""
        try:
            with self._lock:
                self.refresh()
                self.apply_loaded()
        except Exception:  # the poll thread (and a PUT that already committed) must survive
            log.exception("catalog sync failed; will retry at the next interval")

    # -- reading the table ------------------------------------------------------------

    def refresh(self) -> int:
        """Read rows changed since the watermark (minus the look-back); returns how many changed."""
        start = None if self._watermark is None else self._watermark - self.lookback
        after_id, changed = "", 0
        while True:
            try:
                with session_scope(self.sessions) as session:
                    rows = items_changed_since(session, start, after_id, self.page_size)
            except SQLAlchemyError as exc:
                log.warning("cannot read the item catalog (keeping what is loaded): %s", exc)
                return changed
            changed += self._merge(rows)
            if len(rows) < self.page_size:
                return changed
            start, after_id = rows[-1].updated_at, rows[-1].item_id

    def _merge(self, rows: list[ItemRow]) -> int:
        changed = 0
        for row in rows:
            item = TextItem.from_row(row)
            known = self._texts.get(row.item_id)
            if (known is None and row.text) or (known is not None and known != item):
                self._texts[row.item_id] = item
                changed += 1
            if self._watermark is None or row.updated_at > self._watermark:
                self._watermark = row.updated_at
        if changed:
            self._revision += 1
        return changed

    # -- applying to models -----------------------------------------------------------

    def apply(self, model: LoadedModel) -> LoadedModel:
        """``model`` extended with the catalog; never fails a load (logs and serves as is)."""
        if not is_text_aware(model.scorer):
            return model
        with self._lock:
            try:
                extended = extend_model(model, self._texts.values())
            except Exception:
                log.exception("scoring catalog items for %s %s failed", model.name, model.version)
                return model
            self._applied[model.name] = (weakref.ref(extended), self._revision)
        if extended is not model:
            log.info(
                "%s version %s: %d catalog item(s) scored from their text",
                model.name,
                model.version,
                len(extended.from_text),
            )
        return extended

    def apply_loaded(self) -> None:
        """Extend each loaded model that has not seen the current catalog revision."""
        for model in self.holder.loaded():
            ref, revision = self._applied.get(model.name, (None, -1))
            if ref is not None and ref() is model and revision == self._revision:
                continue
            extended = self.apply(model)
            if extended is not model and not self.holder.replace_if_current(model, extended):
                # A new version was swapped in meanwhile; the next poll extends that one.
                self._applied.pop(model.name, None)

    def describe(self, item_id: str) -> list[tuple[LoadedModel, bool]]:
        """(model, from_text) for each loaded model that can recommend ``item_id``."""
        out = []
        for model in self.holder.loaded():
            index = model.item_index.get(item_id)
            if index is not None:
                out.append((model, index in model.from_text))
        return out
