"""Resolving a rule against the catalog: names checked, values typed, tree canonical.

A rule as written may name an attribute the catalog lacks, compare a string
attribute with ``>=``, or give unquoted values (``year:1995``) whose type
only the catalog knows. ``resolve`` settles all of that once per distinct
rule and catalog revision, raising ``RuleError`` with what is wrong, and
returns the canonical tree: ``eq`` as a one-value ``any``, values typed,
sorted and without duplicates, nested ``and`` / ``or`` flattened and their
operands sorted, a range as one node of its tightest lower and upper bound, double
negation removed. ``render`` of that tree is the
canonical form (the mask cache's key), so ``genres:Drama,Comedy`` and
``{"op": "any", "attr": "genres", "values": ["Comedy", "Drama"]}`` share one mask.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.core.text import clip
from app.rules.ast import (
    ATTR_NAME,
    NUMBER_SYNTAX,
    NUMBER_TEXT,
    AllOf,
    And,
    AnyOf,
    Bare,
    Eq,
    Exists,
    Node,
    Not,
    Or,
    Range,
    range_bounds,
    render,
)
from app.rules.catalog import BOOL, NUMBER, OTHER, STRING
from app.rules.errors import RuleError
from app.schemas_fields import clip_int

Kinds = Mapping[str, frozenset[str]]
#: How many attribute names an unknown-attribute message lists.
_LIST_NAMES = 20


def resolve(rule: Node, kinds: Kinds) -> Node:
    """The canonical, typed tree of ``rule`` against the catalog's attribute ``kinds``."""
    if isinstance(rule, Eq):
        return _leaf_values(AnyOf, rule.attr, [rule.value], kinds)
    if isinstance(rule, AnyOf | AllOf):
        return _leaf_values(type(rule), rule.attr, list(rule.values), kinds)
    if isinstance(rule, Range):
        _need(rule.attr, kinds, NUMBER, "compared with <, <=, >, >=")
        # One node, its tightest lower and upper bound: one element must satisfy both
        # (``year>=1990;year<2000`` is two rules, each met by some element of a list).
        lower, upper = range_bounds(rule)
        bounds: dict[str, Any] = dict.fromkeys(("gt", "gte", "lt", "lte"))
        for name, value in (b for b in (lower, upper) if b is not None):
            bounds[name] = _number(rule.attr, value)
        return Range.model_construct(op="range", attr=rule.attr, **bounds)
    if isinstance(rule, Exists):
        _known(rule.attr, kinds)
        return Exists.model_construct(op="exists", attr=rule.attr)
    if isinstance(rule, Not):
        inner = resolve(rule.rule, kinds)
        return inner.rule if isinstance(inner, Not) else Not.model_construct(op="not", rule=inner)
    assert isinstance(rule, And | Or)
    is_and = isinstance(rule, And)
    operands: dict[str, Node] = {}
    for child in rule.rules:
        resolved = resolve(child, kinds)
        same = isinstance(resolved, And) if is_and else isinstance(resolved, Or)
        parts = resolved.rules if same and isinstance(resolved, And | Or) else [resolved]
        for part in parts:
            operands.setdefault(render(part), part)
    ordered = [operands[key] for key in sorted(operands)]
    if len(ordered) == 1:
        return ordered[0]
    if is_and:
        return And.model_construct(op="and", rules=ordered)
    return Or.model_construct(op="or", rules=ordered)


def _known(attr: str, kinds: Kinds) -> frozenset[str]:
    found = kinds.get(attr)
    if found is None:
        # Names stored before the catalog refused what no rule can name are left out.
        names = sorted(name for name in kinds if ATTR_NAME.fullmatch(name))
        listed = ", ".join(names[:_LIST_NAMES]) + (", ..." if len(names) > _LIST_NAMES else "")
        raise RuleError(
            f"unknown attribute '{attr}'; the catalog's attributes are: {listed or '(none)'}"
        )
    return found


def _need(attr: str, kinds: Kinds, kind: str, why: str) -> None:
    found = _known(attr, kinds)
    if kind not in found:
        raise RuleError(f"attribute '{attr}' holds {_describe(found)}; only numbers can be {why}")


def _describe(found: frozenset[str]) -> str:
    words = {NUMBER: "numbers", STRING: "strings", BOOL: "true/false", OTHER: "objects"}
    return " and ".join(words[k] for k in sorted(found)) or "only nulls"


def _leaf_values(
    cls: type[AnyOf] | type[AllOf], attr: str, values: list[Any], kinds: Kinds
) -> Node:
    found = _known(attr, kinds)
    typed = {_key(v): v for v in (_typed(attr, value, found) for value in values)}
    ordered = [typed[key] for key in sorted(typed)]
    return cls.model_construct(op=cls.model_fields["op"].default, attr=attr, values=ordered)


def _number(attr: str, value: int | float) -> int | float:
    """A number of a rule as the catalog compares it: an integral float as an int; an
    integer past 64 bits, or one a double cannot hold (``_exact``), refused."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, int) and not -(2**63) <= value < 2**63:
        raise RuleError(
            f"attribute '{attr}': integer {clip_int(value)} is outside the 64-bit range"
        )
    if isinstance(value, int):
        _exact(attr, value)
    return value


def _exact(attr: str, value: int) -> None:
    """Numbers compare as doubles (docs/rules.md). An integer literal past 2^53 that a
    double cannot hold would be rounded to a neighbour and silently mean another number
    (``code:9007199254740993`` kept the item whose code is 9007199254740992): refused,
    saying which double it would become. One a double holds (2^53 + 2, 2^62) means itself."""
    if abs(value) <= 2**53 or int(float(value)) == value:
        return
    raise RuleError(
        f"attribute '{attr}': integer {value} has no exact double-precision value, and "
        f"numbers compare as doubles (integers are exact up to 2^53 = {2**53}): it would "
        f"mean {int(float(value))}. Store such codes as strings and quote them in rules"
    )


def _key(value: Any) -> tuple[int, Any]:
    """Sort order of typed values: booleans, numbers, strings."""
    if isinstance(value, bool):
        return 0, value
    if isinstance(value, int | float):
        return 1, value
    return 2, value


def _bare_number(attr: str, text: str) -> int | float | None:
    """An unquoted value as a number when it is written as one (``NUMBER_SYNTAX``), else
    None. Not ``float(text)``: Python also reads ``1_995`` (as 1995) and ``nan``. Read
    as the JSON form reads the same text: an integer is an integer, refused past 64 bits
    (a float, it was 1.2345678901234568e+29 where the JSON form said "outside the 64-bit
    range"), a number too large for a float is refused, as a comparison's is."""
    if not NUMBER_SYNTAX.fullmatch(text):
        return None
    if text.lstrip("+-").isdigit():
        return _number(attr, int(text))
    number = float(text)
    if abs(number) == float("inf"):
        raise RuleError(f"attribute '{attr}': number {clip(text)} is not finite")
    return _number(attr, number)


def _typed(attr: str, value: Any, found: frozenset[str]) -> Any:
    """``value`` as the attribute's kind; a ``RuleError`` when it cannot be one."""
    if isinstance(value, Bare):
        text = str(value)
        number = _bare_number(attr, text) if NUMBER in found else None
        if number is not None:
            return number
        if BOOL in found and text in ("true", "false"):
            return text == "true"
        if STRING in found:
            return text
        how = f" (a number is written as {NUMBER_TEXT})" if NUMBER in found else ""
        raise RuleError(f"attribute '{attr}' holds {_describe(found)}; '{text}' is not one{how}")
    if isinstance(value, bool):
        kind = BOOL
    elif isinstance(value, int | float):
        kind = NUMBER
    else:
        kind = STRING
    if kind not in found:
        word = {NUMBER: "a number", STRING: "a string", BOOL: "true/false"}[kind]
        shown = ("true" if value else "false") if kind == BOOL else repr(value)  # not True
        raise RuleError(f"attribute '{attr}' holds {_describe(found)}; {shown} is {word}")
    return _number(attr, value) if kind == NUMBER else value
