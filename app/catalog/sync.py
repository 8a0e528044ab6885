"""``CatalogSync``: keeps this process's loaded models in step with the items table.

* Copy-on-write: each change builds a new ``LoadedModel`` (``extension``) and
  swaps the reference through ``ModelHolder.replace_if_current``, or, for a
  version an experiment's variant pins, ``replace_pinned_if_current``; requests
  holding the old object finish on it. Pinned versions get every change as
  production ones do, so the arms of an experiment see the same catalog.
* Hot swap: ``CatalogSync.apply`` is one of the holder's load listeners, so a
  newly promoted version gets every catalog item with text that its artifact
  lacks before it serves. The holder installs it only while ``still_current``
  says it was extended at the catalog's current revision, else runs the
  listeners again: a change read between the listener and the install (a
  ``PUT``'s own sync) reaches only the versions installed then, and would have
  missed the one about to be.
* Attributes: every row's attributes go to the ``AttributeIndex`` that
  business rules compile against (``app.rules``); a change bumps its
  revision, which invalidates the compiled masks.
* Titles: each live row's title goes to the ``CatalogTitles`` every list names
  its items with (``app.serving.titles``): the catalog's title wins over the
  model's wherever the catalog has one.
* Removals: whether each row is removed (``removed_at``) goes to the
  ``RemovedItems`` every list is masked with (``app.serving.removed``). A
  removed item keeps its attributes there and its row in a text-aware model
  (masked, not dropped: indices are append-only, and a PUT restores it at once).
* Other processes: each server polls the items table at its reload interval
  and keeps the catalog's texts in memory, re-applying them to any loaded model
  that has not seen them. The poll is a keyset on ``(change_epoch, item_id)``:
  every writing transaction stamps its rows with the next value of the catalog's
  change counter, handed out in commit order (``app.repository.upsert_items``),
  so a change committed after a poll always sorts after what that poll read,
  however long its transaction stayed open and whatever the writers' clocks say.
  The first read takes the counter, then the whole table by id; what commits
  after the counter was read is above it.
* The writer: the server that answers a ``PUT``/``DELETE /v1/items/{id}`` (or a
  dashboard Remove/Restore) syncs before answering, so it serves the change at
  once; ``sync_now`` says whether that completed, and when it did not (the read
  or a model's scoring failed) the answer says so (``refresh_pending``): the
  change is committed, and this server serves it at a later poll, like the others.
  A version being hot-swapped in meanwhile gets the change before it is
  installed (above), so a True answer holds for it too.

The app's lifespan (``app.main``) starts and stops it.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app.catalog.extension import TextItem, extend_model, is_text_aware
from app.core.db import session_scope
from app.core.poller import Poller
from app.repository import (
    ItemRow,
    attribute_kinds,
    catalog_epoch,
    items_after,
    items_changed_since,
)
from app.rules.catalog import AttributeIndex
from app.serving.holder import ModelHolder
from app.serving.loaded import LoadedModel
from app.serving.removed import RemovedItems
from app.serving.titles import CatalogTitles

log = logging.getLogger(__name__)

#: ``ModelHolder.replace_if_current`` or ``replace_pinned_if_current``: a copy-on-write swap.
_Replace = Callable[[LoadedModel, LoadedModel], bool]


class _Revisions:
    """The catalog revision at which each model *object* was extended, by identity.

    Why by object, not by model name: a production version and pinned versions of the
    same model (experiment variants that name a version) are served side by side. Keyed
    by name, each would overwrite the other's entry: every sync would extend them all
    again (a pass over the catalog each), and a pin loading beside a hot swap would make
    the other's install look stale and score again. The weak reference checks that
    the id still names that object; entries whose object is gone are dropped as new ones
    are noted (a handful of served versions and their in-flight extensions).
    """

    def __init__(self) -> None:
        self._by_id: dict[int, tuple[weakref.ref[LoadedModel], int]] = {}

    def note(self, model: LoadedModel, revision: int) -> None:
        """Record that ``model`` has the catalog at ``revision`` (under the sync's lock)."""
        for key in [key for key, (ref, _) in self._by_id.items() if ref() is None]:
            del self._by_id[key]
        self._by_id[id(model)] = (weakref.ref(model), revision)

    def at(self, model: LoadedModel) -> int | None:
        """The revision noted for ``model``; None when none was (lock-free: one lookup)."""
        entry = self._by_id.get(id(model))
        if entry is None or entry[0]() is not model:
            return None
        return entry[1]


class CatalogSync:
    """Keeps this process's loaded models in step with the items table (see module doc)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        holder: ModelHolder,
        interval_s: float,
        page_size: int = 1000,
        attributes: AttributeIndex | None = None,
        removed: RemovedItems | None = None,
        titles: CatalogTitles | None = None,
    ) -> None:
        self.sessions = sessions
        self.attributes = attributes if attributes is not None else AttributeIndex()
        self.removed = removed if removed is not None else RemovedItems()
        self.titles = titles if titles is not None else CatalogTitles()
        self.holder = holder
        self.interval_s = interval_s
        self.page_size = page_size
        self._texts: dict[str, TextItem] = {}  # catalog items that have (had) text
        self._revision = 0  # bumped whenever _texts changes
        # (change_epoch, item_id) of the newest change read; None until the first full read
        # (epoch, None): all of that epoch and below has been read
        self._watermark: tuple[int, str | None] | None = None
        # The revision each served object was extended at (``apply_loaded`` skips those
        # at the current one), and what ``apply`` (the load listener) returned at which
        # revision (what ``still_current`` checks at the install).
        self._applied = _Revisions()
        self._listened = _Revisions()
        self._lock = threading.RLock()  # one refresh/apply at a time
        self._poller = Poller("catalog-sync", self.sync_now, interval_s)

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        """Listen to the holder's loads, apply the catalog to what is loaded, start polling."""
        self.holder.add_load_listener(self.apply, self.still_current)
        self.sync_now()
        self._poller.start()

    def stop(self) -> None:
        self._poller.stop()
        self.holder.remove_load_listener(self.apply)

    def sync_now(self) -> bool:
        """Read catalog changes, then extend every loaded model that misses some; whether
        both completed, so that every change committed before the call is served here.

        False when the read, or scoring an item for a loaded model, failed (logged; the
        next poll retries both): a ``PUT``/``DELETE`` that already committed must not
        answer that this server serves the change when it does not (``refresh_pending``).
        """
        try:
            with self._lock:
                read = self._refresh()[1]
                applied = self.apply_loaded()
                return read and applied
        except Exception:  # the poll thread (and a PUT that already committed) must survive
            log.exception("catalog sync failed; will retry at the next interval")
            return False

    # -- reading the table ------------------------------------------------------------

    def refresh(self) -> int:
        """Read rows changed since the watermark; returns how many texts changed."""
        return self._refresh()[0]

    def _refresh(self) -> tuple[int, bool]:
        """``refresh``, and whether the read completed (a database error is logged, and
        what was read before it kept: the watermark moves a page at a time)."""
        changed, read_rows = 0, False
        try:
            if self._watermark is None:
                return self._read_all(), True
            while True:
                epoch, after_id = self._watermark
                with session_scope(self.sessions) as session:
                    rows = items_changed_since(session, epoch, after_id, self.page_size)
                changed += self._merge(rows)
                if rows:
                    last = rows[-1]
                    last_epoch = epoch if last.change_epoch is None else last.change_epoch
                    self._watermark = (last_epoch, last.item_id)
                    read_rows = True
                if len(rows) < self.page_size:
                    if read_rows:
                        self._read_kinds()
                    return changed, True
        except SQLAlchemyError as exc:
            log.warning("cannot read the item catalog (keeping what is loaded): %s", exc)
            return changed, False

    def _read_all(self) -> int:
        """The whole table, a page at a time; the watermark becomes the epoch read first."""
        with session_scope(self.sessions) as session:
            epoch = catalog_epoch(session)
        after_id, changed = "", 0
        while True:
            with session_scope(self.sessions) as session:
                rows = items_after(session, after_id, self.page_size)
            changed += self._merge(rows)
            if len(rows) < self.page_size:
                break
            after_id = rows[-1].item_id
        self._read_kinds()
        self._watermark = (epoch, None)
        return changed

    def _read_kinds(self) -> None:
        """The recorded attribute kinds, to the ``AttributeIndex``: rules on an attribute no
        item holds any more still resolve. Read after rows: a kind is recorded in the
        transaction that writes its first item, and records are never deleted."""
        with session_scope(self.sessions) as session:
            kinds = attribute_kinds(session)
        self.attributes.declare(kinds)

    def _merge(self, rows: list[ItemRow]) -> int:
        ids, titles = self._model_strings(rows)
        self.attributes.update(zip(ids, (row.attributes for row in rows), strict=True))
        self.removed.update(
            (item_id, row.removed_at is not None) for item_id, row in zip(ids, rows, strict=True)
        )
        self.titles.update(
            (item_id, title if row.removed_at is None else None)
            for item_id, title, row in zip(ids, titles, rows, strict=True)
        )
        changed = 0
        for row in rows:
            item = TextItem.from_row(row)
            known = self._texts.get(row.item_id)
            if (known is None and row.text) or (known is not None and known != item):
                self._texts[row.item_id] = item
                changed += 1
        if changed:
            self._revision += 1
        return changed

    def _model_strings(self, rows: list[ItemRow]) -> tuple[list[str], list[str | None]]:
        """Each row's id and title, as a loaded model's own ``str`` where one holds an
        equal one.

        Why: a row's strings are new objects, so the catalog's structures kept a second
        copy of every id and title the served model already holds: at 1M items, ~60 and
        ~80 bytes an item (``benchmarks/catalog_memory.py``). The strings are equal, so
        no reader sees a difference. Models loaded after an item was read do not
        replace its strings (the next change of the item does).
        """
        models = [(m.item_index, m.item_ids, m.titles) for m in self.holder.loaded()]
        ids: list[str] = []
        titles: list[str | None] = []
        for row in rows:
            item_id, title = row.item_id, row.title
            for index, model_ids, model_titles in models:
                at = index.get(item_id)
                if at is not None:
                    item_id = model_ids[at]
                    if title is not None and model_titles[at] == title:
                        title = model_titles[at]
                        break
            ids.append(item_id)
            titles.append(title)
        return ids, titles

    # -- applying to models -----------------------------------------------------------

    def apply(self, model: LoadedModel) -> LoadedModel:
        """``model`` extended with the catalog; never fails a load (logs and serves as is).

        The holder's load listener: it notes what it returned and at which revision, for
        ``still_current``.
        """
        with self._lock:
            extended = self._apply(model)[0]
            self._listened.note(extended, self._revision)
        return extended

    def still_current(self, model: LoadedModel) -> bool:
        """Whether ``model``, which ``apply`` returned for a load, has the catalog's current
        revision; the holder asks as it installs the load, and runs ``apply`` again when not.

        Why not answer False from ``sync_now`` instead while such a load is pending: the
        change then reaches the new version before it serves, and the writer's answer
        stays "served"; the alternative would flag ``refresh_pending`` on every write that
        meets a hot swap, until the next poll. Why not run ``apply`` under the holder's
        install lock: scoring would hold the lock that requests and swaps take.

        Called under the holder's lock, so it takes no lock of its own (``sync_now``
        holds ``self._lock`` while it calls into the holder): it reads two values.
        ``sync_now`` bumps the revision before it asks the holder what is installed, so
        either the install comes first and ``sync_now`` extends the installed version,
        or the install sees the new revision and the listener runs again. A version
        whose scoring failed is current at the revision it failed at (a retry would
        fail alike; the next poll retries it once installed).
        """
        if not is_text_aware(model.scorer):
            return True
        return self._listened.at(model) == self._revision

    def _apply(self, model: LoadedModel) -> tuple[LoadedModel, bool]:
        """``apply``, and whether it completed (False: scoring failed, ``model`` as is)."""
        if not is_text_aware(model.scorer):
            return model, True
        with self._lock:
            try:
                extended = extend_model(model, self._texts.values())
            except Exception:
                log.exception("scoring catalog items for %s %s failed", model.name, model.version)
                return model, False
            self._applied.note(extended, self._revision)
        if extended is not model:
            log.info(
                "%s version %s: %d catalog item(s) scored from their text",
                model.name,
                model.version,
                len(extended.from_text),
            )
        return extended, True

    def apply_loaded(self) -> bool:
        """Extend each served version that has not seen the current catalog revision:
        production versions and pinned ones (experiment variants that name a version);
        whether every one now serves it (False: scoring failed, or its entry was replaced
        meanwhile: a version swapped in, a pin released; the next poll extends what is
        served then).

        Why pinned versions too: they used to get the catalog once, at their load, and
        no item put after it; during an experiment one arm could recommend a new item
        and the pinned arm not, and a ``PUT`` answered that this server serves the
        change while the pinned variant lacked it.
        """
        served: list[tuple[LoadedModel, _Replace]] = [
            (model, self.holder.replace_if_current) for model in self.holder.loaded()
        ]
        served += [(model, self.holder.replace_pinned_if_current) for model in self.holder.pinned()]
        complete = True
        for model, replace in served:
            if self._applied.at(model) == self._revision:
                continue
            extended, applied = self._apply(model)
            complete = complete and applied
            if extended is not model and not replace(model, extended):
                complete = False  # replaced meanwhile; the next poll extends what is served
        return complete

    def describe(self, item_id: str) -> list[tuple[LoadedModel, bool]]:
        """(model, from_text) for each loaded model that can recommend ``item_id``; none
        once it is removed (as this server last read the catalog)."""
        if item_id in self.removed:
            return []
        out = []
        for model in self.holder.loaded():
            index = model.item_index.get(item_id)
            if index is not None:
                out.append((model, index in model.from_text))
        return out
