"""``CatalogSync``: keeps this process's loaded models in step with the items table.

* Copy-on-write: each change builds a new ``LoadedModel`` (``extension``) and
  swaps the reference through ``ModelHolder.replace_if_current``; requests
  holding the old object finish on it.
* Hot swap: ``CatalogSync.apply`` is one of the holder's load listeners, so a
  newly promoted version gets every catalog item with text that its artifact
  lacks before it serves.
* Attributes: every row's attributes go to the ``AttributeIndex`` that
  business rules compile against (``app.rules``); a change bumps its
  revision, which invalidates the compiled masks.
* Other processes: each server polls the items table at its reload interval
  (keyset on ``updated_at``, re-reading a short look-back window because a
  transaction may commit after a later one), keeps the catalog's texts in
  memory and re-applies them to any loaded model that has not seen them.

The app's lifespan (``app.main``) starts and stops it.
"""

from __future__ import annotations

import logging
import threading
import weakref
from datetime import datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app.catalog.extension import TextItem, extend_model, is_text_aware
from app.core.db import session_scope
from app.repository import ItemRow, items_changed_since
from app.rules.catalog import AttributeIndex
from app.serving.holder import ModelHolder
from app.serving.loaded import LoadedModel

log = logging.getLogger(__name__)


class CatalogSync:
    """Keeps this process's loaded models in step with the items table (see module doc)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        holder: ModelHolder,
        interval_s: float,
        lookback_s: float = 10.0,
        page_size: int = 1000,
        attributes: AttributeIndex | None = None,
    ) -> None:
        self.sessions = sessions
        self.attributes = attributes if attributes is not None else AttributeIndex()
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
        """Listen to the holder's loads, apply the catalog to what is loaded, start polling."""
        self.holder.add_load_listener(self.apply)
        self.sync_now()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="catalog-sync", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, 2 * self.interval_s))
            self._thread = None
        self.holder.remove_load_listener(self.apply)

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
        self.attributes.update((row.item_id, row.attributes) for row in rows)
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
