"""Request and response bodies of the item catalog API (``PUT``/``GET``/``DELETE
/v1/items/{item_id}``).

Limits live here so that the HTTP body and ``genrec items import`` (which
goes through ``app.catalog.validate_item``) refuse the same things.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.rules.ast import ATTR_NAME
from app.schemas_fields import JsonObject, Text

#: Longest title and text a catalog item may have (characters).
MAX_TITLE = 1_000
MAX_TEXT = 100_000
#: Largest ``attributes`` object, as compact JSON (bytes).
MAX_ATTRIBUTES_BYTES = 64 * 1024
#: Most attributes an item may have: far more than a catalog's facets (ML-100K's items have
#: 2), while each one costs the write its own work (the kind check against the database,
#: the catalog's refresh): 5,000 small ones, well under the byte limit, made a PUT take a
#: large part of a second here (ad-hoc timings, not a saved benchmark).
MAX_ATTRIBUTES = 256
#: Longest attribute name (characters): the longest a rule can name (``app.rules.ast``),
#: and the key of the attribute's kind in the database (``attribute_kinds``).
MAX_ATTRIBUTE_NAME = 256


#: Schema only (``app.catalog.items.validate_item`` checks, with its own messages): an
#: attribute value is null, true/false, a number, a string, or a list of one of those
#: kinds (nulls allowed among them).
ATTRIBUTE_VALUE_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": ["null", "boolean", "number", "string"]},
        *(
            {"type": "array", "items": {"type": [kind, "null"]}}
            for kind in ("boolean", "number", "string")
        ),
    ]
}


class ItemIn(BaseModel):
    """An item's full catalog entry; PUT replaces what was stored (omitted = none).

    Text the database cannot store (NUL, lone surrogates; ``app.schemas_fields``)
    is refused here, anywhere in ``attributes`` too.
    """

    model_config = ConfigDict(extra="forbid")  # "txt" instead of "text" must not pass

    title: Text | None = Field(None, max_length=MAX_TITLE)
    text: Text | None = Field(
        None,
        max_length=MAX_TEXT,
        description="the item's document (e.g. a plot); text-aware models score a new "
        "item without ratings from it",
    )
    attributes: JsonObject = Field(
        default_factory=dict,
        description="what business rules filter on (docs/rules.md): each value null, "
        "true/false, a number, a string or a flat list of one of those kinds; an attribute "
        "keeps the kind the catalog holds for it (a number stays a number); at most "
        f"{MAX_ATTRIBUTES_BYTES} bytes as JSON and {MAX_ATTRIBUTES} attributes",
        json_schema_extra={
            "maxProperties": MAX_ATTRIBUTES,
            "additionalProperties": ATTRIBUTE_VALUE_SCHEMA,
            "propertyNames": {
                "maxLength": MAX_ATTRIBUTE_NAME,
                "pattern": f"^{ATTR_NAME.pattern}$",
            },
        },
    )


class ItemServing(BaseModel):
    """How one loaded model serves the item."""

    model: str
    version: str
    from_text: bool = Field(
        description="true when the model has no ratings of the item and scores it from its text"
    )


class ItemResponse(BaseModel):
    item_id: str
    title: str | None = None
    text: str | None = None
    attributes: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    serving: list[ItemServing] = Field(
        description="loaded models of this server that can recommend the item; a model "
        "that is not text-aware cannot recommend an item without interactions; empty once "
        "the item is removed"
    )
    removed_at: datetime | None = Field(
        None,
        description="when the item was removed from the catalog (DELETE /v1/items/{item_id}): "
        "it is then in no list; null while it is in the catalog",
    )


class ItemChangeResponse(ItemResponse):
    """The answer of a write (``PUT``/``DELETE /v1/items/{item_id}``): the item as
    committed, and whether this server serves the change yet."""

    refresh_pending: bool = Field(
        description="true when this server could not apply the change before answering "
        "(its read of the catalog, or a text-aware model's scoring of the item, failed; "
        "see its log): the change is committed, but until its next reload poll this server, "
        "like the other replicas, serves the item as before (a removed item still listed, "
        "a restored or new one not yet), as ``serving`` says. Repeating the request is safe"
    )
