"""The item catalog: the service's own item metadata, and new items served from their text.

Kim et al., "Convolutional Matrix Factorization for Document Context-Aware
Recommendation" (RecSys 2016), eq. 9: an item without ratings has
v_j = cnn(W, X_j). So when an item with text but no ratings enters the
catalog (``PUT /v1/items/{id}`` or ``genrec items import``) and the loaded
model is text-aware (its scorer is a ``training.models.base.TextAwareScorer``),
its row is computed once from the text and added to the model — no
retraining. Responses flag such items ``from_text``.

One job per module:

* ``items`` — the rules an item must meet, writing and reading the items
  table, and the all-or-nothing file import.
* ``extension`` — growing one loaded model with catalog items (copy on write).
* ``removal`` — removing items (soft: ``removed_at``), the route's and the CLI's, and
  restoring them as stored (the dashboard's).
* ``sync`` — keeping every loaded model of this process in step with the
  table (``CatalogSync``, started and stopped by the app's lifespan).

A model that is not text-aware cannot place an item nobody interacted with:
such a catalog item is not recommendable by it (``GET /v1/items/{id}`` still
returns it, with an empty ``serving`` list for that model). An item the
artifact already knows keeps its trained row; a text change only re-scores
items that were scored from text. Clearing the text of such an item gives it
the row of an empty document (the prior mean of an item without one).
"""

from app.catalog.extension import TextItem, extend_model, is_text_aware
from app.catalog.items import (
    CatalogError,
    FileRecord,
    check_kinds,
    import_records,
    read_item,
    save_items,
    validate_item,
)
from app.catalog.removal import (
    UnknownItems,
    remove_from_database,
    remove_items,
    restore_items,
)
from app.catalog.sync import CatalogSync

__all__ = [
    "CatalogError",
    "CatalogSync",
    "FileRecord",
    "TextItem",
    "UnknownItems",
    "check_kinds",
    "extend_model",
    "import_records",
    "is_text_aware",
    "read_item",
    "remove_from_database",
    "remove_items",
    "restore_items",
    "save_items",
    "validate_item",
]
