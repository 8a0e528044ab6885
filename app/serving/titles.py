"""``CatalogTitles``: the catalog's current title of each live item, which lists show.

A model version carries the titles of the data it was trained on (``items.json``,
``LoadedModel.titles``); the catalog (``PUT /v1/items/{id}``, ``genrec items
import``) may rename an item afterwards. An operator who renames an item expects
every list to show the new name at once, not once a retrained version is
promoted, so the catalog's title wins wherever the catalog has one for a live
item. An item the catalog does not hold, holds without a title, or has removed
keeps the model's title (a removed item is in no list; the similar list asked for
it still names it as the model knew it).

``app.catalog.sync.CatalogSync`` feeds it with every other catalog change (the
same keyset poll, so every replica follows a rename). Why a dict of its own
rather than rewriting each model's ``titles``: the map is shared by every model
and version, needs no copy-on-write of a model per rename, and a list pays one
dict lookup per item it shows, no database read.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable


class CatalogTitles:
    """Item id -> the catalog's title, for live catalog items that have one.

    Written by the catalog sync only (under a lock, one poll at a time); read by
    request threads without a lock: a single ``dict.get`` sees the value before or
    after a concurrent update, never a torn one, and nothing iterates the dict.
    """

    def __init__(self) -> None:
        self._titles: dict[str, str] = {}
        self._lock = threading.Lock()
        #: ``get(item_id, default)``: the catalog's title of ``item_id``, else ``default``
        #: (the model's). The dict's own bound ``get`` (the dict is updated in place, never
        #: replaced): a method wrapping it cost a list of 100 items ~16 us more, this ~0.
        self.get: Callable[[str, str | None], str | None] = self._titles.get

    def update(self, rows: Iterable[tuple[str, str | None]]) -> int:
        """Merge (item id, its title; None when it has none or is removed) rows;
        returns how many items' shown titles changed."""
        changed = 0
        with self._lock:
            for item_id, title in rows:
                if title is None:
                    changed += self._titles.pop(item_id, None) is not None
                elif self._titles.get(item_id) != title:
                    self._titles[item_id] = title
                    changed += 1
        return changed

    def __len__(self) -> int:
        return len(self._titles)
