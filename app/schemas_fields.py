"""Field types every request model and parameter shares: storable text, strict JSON numbers.

Why one module: two rules must hold on every route alike, or a probe finds the
route that forgot them.

* **Storable text.** Every string a client sends may end up in the database
  (ids, model names, catalog text, job fields). PostgreSQL text cannot hold the
  NUL character, and a lone UTF-16 surrogate (``"\\ud800"`` in JSON) is not
  Unicode at all: it cannot be encoded for the driver, for Redis or for the
  JSON answer. Refused here, either is a 422 naming the field; let through, it
  was a 503 ``database_unavailable`` (an outage alert, a client retrying a
  request that can never succeed) or a 500.
* **Strict numbers.** A JSON body's number field takes a JSON number, a boolean
  field ``true``/``false``: ``"5"`` for a rating is a client bug, refused, not
  coerced. Integers that reach the database fit its 64-bit columns. Query
  strings are text by nature; their numbers are parsed, then checked.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    GetJsonSchemaHandler,
    StrictBool,
    StrictFloat,
    StrictInt,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from app.core.errors import LONE_SURROGATE, only_white_space
from app.core.text import clip
from training.models import REGISTRY

#: The range of a PostgreSQL ``bigint`` (and of SQLite's integers).
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def unstorable(value: str) -> str | None:
    """Why the database cannot store ``value`` (None when it can)."""
    if "\x00" in value:
        return "must not contain the NUL character (U+0000): the database cannot store it"
    if not value.isascii() and _LONE_SURROGATE.search(value):
        return LONE_SURROGATE
    return None


def id_problem(value: str, what: str, max_length: int) -> str | None:
    """Why ``value`` cannot be an id (a user, item or session id) named ``what``, or None:
    empty or only white space, longer than ``max_length`` (``GENREC_MAX_ID_LENGTH``), or
    unstorable. The one rule of the API's routes, the catalog's PUT and import, and the
    CLI's ``items remove`` / ``users erase``, so each says the same thing of the same id."""
    if not value:
        return f"{what} must be a non-empty string"
    if not value.strip():  # "must be non-empty" of " " sent clients looking for a bug in vain
        return f"{what} is {only_white_space(value)}"
    if len(value) > max_length:
        return f"{what} is {len(value)} characters long; the limit is {max_length}"
    if reason := unstorable(value):
        return f"{what} {reason}"
    return None


def storable(value: Any) -> Any:
    """An after-validator (a before-validator on every id made a 1,000-row batch's
    validation twice as slow); anything but a string passes through (None of optional
    parameters). A *constrained* string with a lone surrogate fails pydantic's own
    check first (``string_unicode``), which ``app.core.errors`` words the same way."""
    if isinstance(value, str) and (reason := unstorable(value)):
        raise ValueError(reason)
    return value


def _storable_json(value: Any) -> Any:
    """Every key and string inside a free-form JSON value (catalog ``attributes``)."""
    pending: list[tuple[str, Any]] = [("", value)]
    while pending:
        where, node = pending.pop()
        if isinstance(node, str):
            if reason := unstorable(node):
                raise ValueError(f"{where or 'value'} {reason}")
        elif isinstance(node, Mapping):
            for key, child in node.items():
                if isinstance(key, str) and (reason := unstorable(key)):
                    raise ValueError(f"key '{clip(key)}' {reason}")
                name = clip(str(key))  # the path is bounded by the 422's message bound
                pending.append((f"{where}.{name}" if where else name, child))
        elif isinstance(node, list | tuple):
            pending.extend((f"{where}[{n}]", child) for n, child in enumerate(node))
    return value


#: Any string that reaches the database or the store.
Text = Annotated[str, AfterValidator(storable)]
#: Ids are opaque strings; a blank one is always a client bug.
Id = Annotated[str, Field(min_length=1, max_length=256, pattern=r"\S"), AfterValidator(storable)]
#: The registered model names: every ``model`` field and parameter lists them as its
#: schema's ``enum``, so a client generated from ``/openapi.json`` offers exactly them.
#: Only the schema: a name outside them still gets the route's own 4xx, which says
#: which names exist (a plain enum error would not say which are served).
MODEL_ENUM: dict[str, Any] = {"enum": sorted(REGISTRY)}
ModelName = Annotated[
    str,
    Field(min_length=1, max_length=64, json_schema_extra=MODEL_ENUM),
    AfterValidator(storable),
]
#: Schema only: a query parameter in the rule language (``filter``, ``boost``, ``cap``) must
#: hold some text. The parser answers a blank one with its own 422 ("filter is empty").
NON_BLANK: dict[str, Any] = {"pattern": r"\S"}
#: One such query parameter's value.
RuleText = Annotated[Text, Field(json_schema_extra=NON_BLANK)]
#: A free-form JSON object whose strings must be storable.
JsonObject = Annotated[dict[Text, Any], AfterValidator(_storable_json)]

#: pydantic's name of each bound -> JSON Schema's.
_JSON_SCHEMA_BOUNDS = {
    "ge": "minimum",
    "le": "maximum",
    "gt": "exclusiveMinimum",
    "lt": "exclusiveMaximum",
}


@dataclass(frozen=True)
class JsonSchemaBounds:
    """Put after ``Field(ge=..., le=...)`` in an ``Annotated`` whose bounds pydantic cannot
    attach to a JSON Schema type, to have the schema say ``minimum`` / ``maximum``.

    Why: pydantic translates a bound into JSON Schema only where it sits on a number
    type; on a union (``Finite``: int or float) or a type with a validator (``Number``
    with an ``AfterValidator``) it writes it under its own name, ``ge`` / ``le``, which
    JSON Schema does not know, so ``/openapi.json`` told clients and schemathesis no
    range for a boost's weight, ``mmr`` or an experiment's window. Validation is the
    ``Field``'s, unchanged; this edits the schema only.
    """

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        return {_JSON_SCHEMA_BOUNDS.get(key, key): value for key, value in json_schema.items()}


#: A JSON integer that fits a 64-bit column (``true`` and ``5.0`` are not integers).
Int64 = Annotated[StrictInt, Field(ge=INT64_MIN, le=INT64_MAX)]
#: A finite JSON number (an integer is a number; ``"5"`` is not).
Number = Annotated[StrictFloat, Field(allow_inf_nan=False)]
Bool = StrictBool


def int64_if_int(value: Any) -> Any:
    """An integer outside int64 is refused even where a float would also do (a float
    field would otherwise take it, rounded: a seed of 10**23 is not a float)."""
    wide = isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX
    if wide and not isinstance(value, bool):
        raise ValueError(f"integer {clip_int(value)} is outside the 64-bit range")
    return value


def clip_int(value: int) -> str:
    """An integer for a message: a 400-digit one as its first digits and its length."""
    text = str(value)
    digits = len(text.lstrip("-"))
    return text if digits <= 30 else f"{text[:21]}... ({digits} digits)"


def one_error(message: str) -> WrapValidator:
    """A union's failure as one message: pydantic would list one error per member, each
    under a path of internal type names that tells a client nothing."""

    def validate(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(value)
        except ValidationError as exc:
            reasons = {e["msg"].removeprefix("Value error, ") for e in exc.errors()}
            own = [r for r in reasons if "must not" in r or "64-bit" in r]
            raise ValueError(own[0] if own else message) from None

    return WrapValidator(validate)


#: One scalar of a free-form settings object (retrain ``params``): strict JSON types.
Scalar = Annotated[
    Bool | Int64 | Number | Text | None,
    BeforeValidator(int64_if_int),
    one_error("must be a string, a 64-bit integer, a finite number, true/false or null"),
]


def _iso_text(value: Any) -> Any:
    """Event times are ISO-8601 strings: a number (or a string of digits), which pydantic
    would read as Unix seconds or milliseconds by its size, is refused."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or value.strip().lstrip("+-").replace(".", "", 1).isdigit():
        raise ValueError(
            "must be an ISO-8601 date-time string, e.g. 2026-11-23T10:00:00Z; "
            f"got {type(value).__name__} {_quoted(value)}"
        )
    return storable(value)


def _quoted(value: Any) -> str:
    """A refused value as a message quotes it: text clipped (``clip``), else its repr."""
    return f"'{clip(value)}'" if isinstance(value, str) else clip(repr(value))


def _decimal_digits(value: Any) -> Any:
    """A query string's integer is written in decimal digits: pydantic's lax parsing would
    also read ``5.0``, ``+5``, `` 5 `` and ``5_0`` (as 50), which no client means to send.
    A minus sign passes, so that ``k=-1`` gets the range's own message."""
    digits = value.removeprefix("-") if isinstance(value, str) else ""
    if isinstance(value, str) and not (digits.isascii() and digits.isdigit()):
        raise ValueError(f"must be a whole number written in digits (e.g. 10), got '{clip(value)}'")
    return value


#: The digits-only rule of ``QueryInt``, for a FastAPI parameter with a range: it must come
#: after ``Query(ge=..., le=...)``, or the schema says ``ge``/``le`` for minimum/maximum.
DECIMAL_DIGITS = BeforeValidator(_decimal_digits)
#: An integer query parameter (``?k=``): digits only, then the field's own range checks.
QueryInt = Annotated[int, DECIMAL_DIGITS]


#: Type guard of timestamp fields (the range check follows in ``app.schemas``).
IsoDateTime = Annotated[datetime, BeforeValidator(_iso_text)]
