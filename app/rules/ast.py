"""The rule language's syntax tree: one pydantic model per operator (the JSON form).

A rule is a small tree. Leaves test one catalog attribute of an item; ``and``,
``or`` and ``not`` combine them. The JSON form in request bodies *is* this
tree (a discriminated union on ``op``); the query-string form
(``app.rules.query``) parses into the same classes, and ``render`` writes any
tree back in query syntax: that rendering of the resolved tree
(``app.rules.resolve``) is the canonical form, the cache key of compiled masks.

Bounds (checked on the raw JSON before pydantic descends into it, and by the
query parser): depth ``MAX_DEPTH``, ``MAX_NODES`` nodes, ``MAX_VALUES`` values
per leaf, strings of at most ``MAX_STRING`` characters. A hostile body (10,000
values, 1,000 levels of ``not``) is a 422 naming the bound, never a deep
recursion.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    model_validator,
)

from app.schemas_fields import int64_if_int, one_error, storable

#: Deepest nesting of a rule (a leaf alone is depth 1).
MAX_DEPTH = 8
#: Most nodes (operators and leaves) in one rule.
MAX_NODES = 64
#: Most values one leaf may list (``any`` / ``all``).
MAX_VALUES = 256
#: Longest attribute name and string value.
MAX_STRING = 256
#: Most boosts in one request.
MAX_BOOSTS = 8
#: Largest boost weight, in units of the request's score spread (either sign).
MAX_WEIGHT = 100.0

#: Attribute names: letters, digits, ``_ . -``; starting with a letter or ``_``. The one
#: definition: the grammar's NAME (``app.rules.query``), the JSON form's ``attr`` and the
#: catalog's check of the names it stores (``app.catalog.items``) all use it.
ATTR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
#: The pattern as written in messages and docs.
ATTR_NAME_TEXT = "[A-Za-z_][A-Za-z0-9_.-]*"

#: A number in the query form: digits, an optional fraction and exponent (JSON's numbers,
#: also taking a sign, ``.5`` and ``5.``). The one definition: the grammar's NUMBER
#: (``app.rules.query``) and the reading of a bare value as a number (``app.rules.resolve``)
#: use it, so ``year:1_995`` is not 1995 (as Python's ``float("1_995")`` is). ``[0-9]``, not
#: ``\d``: Python's ``\d`` (and ``int``/``float``) take any Unicode digit (``١٩٩٥``).
NUMBER_SYNTAX = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")
#: How a number is written, for messages.
NUMBER_TEXT = "digits with an optional fraction and exponent, e.g. 1995, -2.5 or 1e3"


class Bare(str):
    """A value written without quotes in the query-string form: its type comes from the
    attribute (``year:1995`` is the number 1995, ``title:1995`` the string "1995")."""

    __slots__ = ()


AttrName = Annotated[
    StrictStr, Field(min_length=1, max_length=MAX_STRING, pattern=f"^{ATTR_NAME.pattern}$")
]
Scalar = Annotated[
    StrictBool
    | StrictInt
    | Annotated[StrictFloat, Field(allow_inf_nan=False)]
    # Storable as the query form's values are (NUL, lone surrogates: a 422 naming it there,
    # and no catalog value can hold them, so such a rule could only match nothing).
    | Annotated[StrictStr, Field(max_length=MAX_STRING), AfterValidator(storable)],
    Field(union_mode="left_to_right"),
    BeforeValidator(int64_if_int),
    one_error(f"must be a string (at most {MAX_STRING} characters), a finite number or true/false"),
]
Finite = Annotated[
    StrictInt | Annotated[StrictFloat, Field(allow_inf_nan=False)],
    BeforeValidator(int64_if_int),
    one_error("must be a finite number"),
]


class _Node(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Eq(_Node):
    """The attribute equals ``value`` (a list attribute: contains it)."""

    op: Literal["eq"] = "eq"
    attr: AttrName
    value: Scalar


class AnyOf(_Node):
    """The attribute equals (a list attribute: contains) at least one of ``values``."""

    op: Literal["any"] = "any"
    attr: AttrName
    values: list[Scalar] = Field(min_length=1, max_length=MAX_VALUES)


class AllOf(_Node):
    """A list attribute contains every one of ``values`` (a scalar: equals all of them)."""

    op: Literal["all"] = "all"
    attr: AttrName
    values: list[Scalar] = Field(min_length=1, max_length=MAX_VALUES)


class Range(_Node):
    """A number attribute (a list of numbers: one of them) within the given bounds: one
    element satisfies every bound (``[1985, 2005]`` is not within 1990..2000)."""

    op: Literal["range"] = "range"
    attr: AttrName
    gt: Finite | None = None
    gte: Finite | None = None
    lt: Finite | None = None
    lte: Finite | None = None

    @model_validator(mode="after")
    def _one_bound(self) -> Range:
        if self.gt is None and self.gte is None and self.lt is None and self.lte is None:
            raise ValueError("a range needs at least one of gt, gte, lt, lte")
        return self


class Exists(_Node):
    """The item has the attribute (present and not null)."""

    op: Literal["exists"] = "exists"
    attr: AttrName


class And(_Node):
    op: Literal["and"] = "and"
    rules: list[Rule] = Field(min_length=1, max_length=MAX_NODES)


class Or(_Node):
    op: Literal["or"] = "or"
    rules: list[Rule] = Field(min_length=1, max_length=MAX_NODES)


class Not(_Node):
    op: Literal["not"] = "not"
    rule: Rule


Leaf = Eq | AnyOf | AllOf | Range | Exists
Node = Leaf | And | Or | Not


#: The operators of the JSON form's ``op``, as the docs list them.
OPS = ("eq", "any", "all", "range", "exists", "and", "or", "not")
_OPS_TEXT = ", ".join(OPS)


def _op_problem(node: dict[Any, Any], path: str) -> str | None:
    """What is wrong with a rule's ``op``, or None. Checked here, not left to pydantic's
    tag error, which quotes the whole tag twice (a 1 MB ``op`` was a 2 MB answer) and an
    object as a Python repr."""
    where = f"{path}: " if path else ""
    if "op" not in node:
        return f"{where}a rule needs op, one of: {_OPS_TEXT}"
    op = node["op"]
    if isinstance(op, str) and op in OPS:
        return None
    if isinstance(op, str):
        shown = repr(op) if len(op) <= 40 else f"{op[:37]!r}... ({len(op)} characters)"
    elif isinstance(op, dict | list):
        shown = "an object" if isinstance(op, dict) else "an array"
    else:
        shown = json.dumps(op)  # null, true, a number
    return f"{where}op {shown} is not one of: {_OPS_TEXT}"


def check_bounds(raw: Any) -> Any:
    """Depth, node count, list lengths and operators of a raw JSON rule, walked without
    recursion.

    Runs before pydantic validates the tree (which recurses), so a rule nested
    10,000 deep is refused here with the bound it breaks.
    """
    stack: list[tuple[Any, int, str]] = [(raw, 1, "")]
    nodes = 0
    while stack:
        node, depth, path = stack.pop()
        if not isinstance(node, dict):
            continue  # pydantic says what is wrong with it
        nodes += 1
        if depth > MAX_DEPTH:
            raise ValueError(f"rule is nested deeper than {MAX_DEPTH} levels")
        if nodes > MAX_NODES:
            raise ValueError(f"rule has more than {MAX_NODES} nodes")
        if problem := _op_problem(node, path):
            raise ValueError(problem)
        values = node.get("values")
        if isinstance(values, list) and len(values) > MAX_VALUES:
            raise ValueError(f"a rule lists {len(values)} values; at most {MAX_VALUES} per rule")
        prefix = f"{path}.{node['op']}" if path else str(node["op"])
        children = node.get("rules")
        if isinstance(children, list):
            if len(children) > MAX_NODES:
                raise ValueError(f"rule has more than {MAX_NODES} nodes")
            stack.extend(
                (child, depth + 1, f"{prefix}.rules[{n}]") for n, child in enumerate(children)
            )
        if "rule" in node:
            stack.append((node["rule"], depth + 1, f"{prefix}.rule"))
    return raw


#: A rule as JSON in a request body: bounded first, then validated as the tree.
Rule = Annotated[
    Eq | AnyOf | AllOf | Range | Exists | And | Or | Not,
    Discriminator("op"),
]
BoundedRule = Annotated[Rule, BeforeValidator(check_bounds)]

for _cls in (And, Or, Not):
    _cls.model_rebuild()


# --------------------------------------------------------------------------- rendering

_BARE_VALUE = re.compile(r"[^\s,()|;!:\"<>=*^\\][^,()|;\"<>=^\\]*")


def render_value(value: bool | int | float | str) -> str:
    """A value in query syntax: bare text stays bare, other strings JSON-quoted, numbers plain."""
    if isinstance(value, Bare):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)
    return json.dumps(value, ensure_ascii=False)


def is_bare(text: str) -> bool:
    """True when ``text`` can be written unquoted in the query form (and reads back the same)."""
    return bool(_BARE_VALUE.fullmatch(text)) and text == text.strip() and "\x00" not in text


_SYMBOLS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
Bound = tuple[str, int | float]


def range_bounds(rule: Range) -> tuple[Bound | None, Bound | None]:
    """The tightest lower bound (``gt``/``gte``) and upper bound (``lt``/``lte``) of a range:
    what one element must satisfy (``gt: 5, gte: 5`` is ``gt: 5``)."""
    lower: Bound | None = None
    for name in ("gt", "gte"):
        value = getattr(rule, name)
        if value is not None and (lower is None or value > lower[1]):
            lower = (name, value)
    upper: Bound | None = None
    for name in ("lt", "lte"):
        value = getattr(rule, name)
        if value is not None and (upper is None or value < upper[1]):
            upper = (name, value)
    return lower, upper


def _values(values: list[Any]) -> str:
    return ",".join(render_value(v) for v in values)


def render(rule: Node) -> str:
    """``rule`` in query syntax (``app.rules.query`` reads it back to an equal tree)."""
    if isinstance(rule, Eq):
        return f"{rule.attr}:{render_value(rule.value)}"
    if isinstance(rule, AnyOf):
        return f"{rule.attr}:{_values(rule.values)}"
    if isinstance(rule, AllOf):
        return f"{rule.attr}:all({_values(rule.values)})"
    if isinstance(rule, Exists):
        return f"{rule.attr}:*"
    if isinstance(rule, Range):
        lower, upper = range_bounds(rule)
        if lower is not None and upper is not None:  # one element within both: chained
            low = "<" if lower[0] == "gt" else "<="
            high = "<" if upper[0] == "lt" else "<="
            return f"{render_value(lower[1])}{low}{rule.attr}{high}{render_value(upper[1])}"
        name, bound = lower or upper  # type: ignore[misc]
        return f"{rule.attr}{_SYMBOLS[name]}{render_value(bound)}"
    if isinstance(rule, Not):
        return "!" + _grouped(rule.rule)
    if isinstance(rule, And):
        return ";".join(_grouped(r) for r in rule.rules)
    return "|".join(_grouped(r) for r in rule.rules)


def _grouped(rule: Node) -> str:
    """``rule`` rendered as one operand: rules of several parts in parentheses."""
    text = render(rule)
    if isinstance(rule, And | Or) and len(rule.rules) > 1:
        return f"({text})"
    return text
