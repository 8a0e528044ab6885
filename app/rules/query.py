"""The query-string form of the rule language, parsed by one LALR grammar (lark).

Why a grammar and a parser library: the form has nesting, quoting and
precedence; a grammar states them once (``GRAMMAR``, quoted in docs/rules.md)
and lark's LALR parser turns text into a tree or a positioned error without
ever evaluating anything. The tree becomes the same ``app.rules.ast`` nodes
as the JSON form.

Examples (one ``filter`` parameter each; several ``filter`` parameters AND together)::

    genres:Comedy                 equality (a list attribute: contains)
    genres:Comedy,Drama           any of several values
    genres:all(Comedy,Drama)      all of several values
    year>=1990                    numeric comparison (>, >=, <, <=)
    1990<=year<2000               one number (of a list: one element) within both bounds
    year:*                        presence
    !genres:Horror                negation
    (genres:Comedy|year<1960);lang:"en"    | is or, ; is and, parentheses group

Unquoted values take their type from the attribute (``year:1995`` is a number
when ``year`` is numeric); quoted values are strings. Precedence: ``!`` binds
tightest, then ``;``, then ``|``.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

from lark import Lark, Token, Transformer_NonRecursive
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from app.core.text import clip
from app.rules.ast import (
    ATTR_NAME,
    MAX_DEPTH,
    MAX_NODES,
    MAX_STRING,
    MAX_VALUES,
    MAX_WEIGHT,
    NUMBER_SYNTAX,
    AllOf,
    And,
    AnyOf,
    Bare,
    Exists,
    Node,
    Not,
    Or,
    Range,
)
from app.rules.errors import RuleError
from app.schemas_fields import unstorable

#: Longest text one ``filter`` / ``boost`` / ``cap`` parameter may have.
MAX_TEXT = 4096

GRAMMAR = r"""
filter: disj
boost: disj ("^" NUMBER)?
cap: NAME ":" INT

?disj: conj ("|" conj)*
?conj: unary (";" unary)*
?unary: "!" unary                      -> negate
      | "(" disj ")"
      | atom
atom: NAME ":" values                  -> any_of
    | NAME ":" ANY_OPEN values ")"     -> any_of
    | NAME ":" ALL_OPEN values ")"     -> all_of
    | NAME ":" "*"                     -> exists
    | NAME CMP NUMBER                  -> compare
    | NUMBER CMP NAME CMP NUMBER       -> between
values: value ("," value)*
?value: BARE                           -> bare
      | ESCAPED_STRING                 -> quoted

NAME: /@NAME@/
BARE: /[^\s,()|;!:"<>=*^\\][^,()|;"<>=^\\]*/
ANY_OPEN.2: "any("
ALL_OPEN.2: "all("
CMP: ">=" | "<=" | ">" | "<"
NUMBER: /@NUMBER@/
INT: /[0-9]+/
%import common.ESCAPED_STRING
%ignore /\s+/
"""
# One definition of an attribute name and of a number (app.rules.ast).
GRAMMAR = GRAMMAR.replace("@NAME@", ATTR_NAME.pattern).replace("@NUMBER@", NUMBER_SYNTAX.pattern)

_PARSER = Lark(GRAMMAR, parser="lalr", start=["filter", "boost", "cap"])


def _number(text: str) -> int | float:
    """A NUMBER token: an integer as an ``int`` (of any size: resolve refuses one past 64
    bits, as the JSON form does), anything else as a finite float."""
    if text.lstrip("+-").isdigit():  # ASCII digits: the grammar's NUMBER
        return int(text)  # at most MAX_TEXT digits, within Python's conversion limit
    return _finite(text)


def _finite(text: str) -> float:
    """A NUMBER token as a float, refused when it is too large for one (``1e999``)."""
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise RuleError(f"number {clip(text)} is not finite")
    return value


class _ToTree(Transformer_NonRecursive[Token, Any]):
    """Lark's parse tree -> ``app.rules.ast`` nodes (no recursion: deep input cannot
    overflow the stack).

    The depth and node bounds are applied as the nodes are built, bottom up
    (``_grown``), not only once the whole tree stands (``_check``): 4,000 ``!`` built
    4,000 ``Not`` nodes (150 ms of pydantic constructors on the event loop) before the
    check refused the ninth level.
    """

    def __init__(self) -> None:
        super().__init__()
        #: (depth, nodes) of each rule node built so far, by ``id``; leaves are (1, 1).
        self._shape: dict[int, tuple[int, int]] = {}

    def _grown(self, node: Node, children: list[Any]) -> Node:
        shapes = [self._shape.get(id(child), (1, 1)) for child in children]
        depth = 1 + max(d for d, _ in shapes)
        nodes = 1 + sum(n for _, n in shapes)
        if depth > MAX_DEPTH:
            raise RuleError(f"rule is nested deeper than {MAX_DEPTH} levels")
        if nodes > MAX_NODES:
            raise RuleError(f"rule has more than {MAX_NODES} nodes")
        self._shape[id(node)] = (depth, nodes)
        return node

    def filter(self, children: list[Any]) -> Node:
        node: Node = children[0]
        return node

    def boost(self, children: list[Any]) -> tuple[Node, float]:
        weight = _finite(str(children[1])) if len(children) > 1 else 1.0
        if not -MAX_WEIGHT <= weight <= MAX_WEIGHT:
            raise RuleError(f"boost weight {weight:g} is outside [-{MAX_WEIGHT:g}, {MAX_WEIGHT:g}]")
        return children[0], weight

    def cap(self, children: list[Any]) -> tuple[str, int]:
        return _attr(children[0]), int(children[1])

    def disj(self, children: list[Any]) -> Node:
        return self._grown(Or.model_construct(op="or", rules=list(children)), children)

    def conj(self, children: list[Any]) -> Node:
        return self._grown(And.model_construct(op="and", rules=list(children)), children)

    def negate(self, children: list[Any]) -> Node:
        return self._grown(Not.model_construct(op="not", rule=children[0]), children)

    def any_of(self, children: list[Any]) -> AnyOf:
        return AnyOf.model_construct(op="any", attr=_attr(children[0]), values=children[-1])

    def all_of(self, children: list[Any]) -> AllOf:
        return AllOf.model_construct(op="all", attr=_attr(children[0]), values=children[-1])

    def exists(self, children: list[Any]) -> Exists:
        return Exists.model_construct(op="exists", attr=_attr(children[0]))

    def compare(self, children: list[Any]) -> Range:
        attr, symbol, number = _attr(children[0]), str(children[1]), _number(str(children[2]))
        key = {">": "gt", ">=": "gte", "<": "lt", "<=": "lte"}[symbol]
        bounds: dict[str, Any] = {"gt": None, "gte": None, "lt": None, "lte": None, key: number}
        return Range.model_construct(op="range", attr=attr, **bounds)

    def between(self, children: list[Any]) -> Range:
        low, low_cmp, _, high_cmp, high = (str(c) for c in children)
        if low_cmp not in ("<", "<=") or high_cmp not in ("<", "<="):
            raise RuleError(
                f"a range with two bounds is written LOW<NAME<HIGH (each < or <=), e.g. "
                f"1990<=year<2000; got {low_cmp!r} and {high_cmp!r}"
            )
        bounds: dict[str, Any] = {
            "gt": None,
            "gte": None,
            "lt": None,
            "lte": None,
            "gt" if low_cmp == "<" else "gte": _number(low),
            "lt" if high_cmp == "<" else "lte": _number(high),
        }
        return Range.model_construct(op="range", attr=_attr(children[2]), **bounds)

    def values(self, children: list[Any]) -> list[Any]:
        if len(children) > MAX_VALUES:
            raise RuleError(f"a rule lists {len(children)} values; at most {MAX_VALUES} per rule")
        return list(children)

    def bare(self, children: list[Token]) -> Bare:
        return Bare(_string(str(children[0]).strip()))

    def quoted(self, children: list[Token]) -> str:
        try:
            return _string(str(json.loads(str(children[0]))))
        except json.JSONDecodeError as exc:  # the grammar lets any backslash through
            raise RuleError(f"a quoted value is not a JSON string: {exc.msg}") from None


def _attr(token: Token) -> str:
    name = str(token)
    if len(name) > MAX_STRING:
        raise RuleError(f"attribute name is {len(name)} characters long; the limit is {MAX_STRING}")
    return name


def _string(text: str) -> str:
    if len(text) > MAX_STRING:
        raise RuleError(f"a value is {len(text)} characters long; the limit is {MAX_STRING}")
    if reason := unstorable(text):  # NUL, or a lone surrogate escape such as "\ud800"
        raise RuleError(f"a value {reason}")
    return text


def _check(node: Node) -> None:
    """Depth and node count of a parsed rule (iteratively)."""
    stack: list[tuple[Node, int]] = [(node, 1)]
    count = 0
    while stack:
        current, depth = stack.pop()
        count += 1
        if depth > MAX_DEPTH:
            raise RuleError(f"rule is nested deeper than {MAX_DEPTH} levels")
        if count > MAX_NODES:
            raise RuleError(f"rule has more than {MAX_NODES} nodes")
        if isinstance(current, And | Or):
            stack.extend((child, depth + 1) for child in current.rules)
        elif isinstance(current, Not):
            stack.append((current.rule, depth + 1))


def _checked(start: str, text: str, node: Node) -> None:
    try:
        _check(node)
    except RuleError as exc:
        raise RuleError(f"{start} '{clip(text)}': {exc}") from None


#: A ``!`` where a ``not`` can begin (a bare value may hold ``!`` after its first
#: character: ``title:Wow!``): at the start, or after ``(``, ``;``, ``|`` or ``!``.
_NEGATION = re.compile(r"(?:^|[(;|!])\s*(?=!)")
#: A quoted value (the grammar's ``ESCAPED_STRING``).
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
#: The most parentheses a rule within the bounds needs (a group or an ``any(`` /
#: ``all(``: at most two per node).
_MAX_PARENTHESES = 2 * MAX_NODES


def _too_large(text: str) -> str | None:
    """Why ``text`` cannot be a rule within the bounds, told by counting characters (C
    speed) before lark parses it: the parser's Python costs ~10-12 us a token, so 4,096
    characters of ``!!!...`` or ``((((...`` took 50 ms of the event loop to be refused
    afterwards. A count of the marks is an upper bound on what they add only when none
    is quoted (``;`` and ``|`` are never part of a bare value), so quoted values are
    emptied first."""
    text = _QUOTED.sub('""', text)
    # Each adds a node (a ``not``, or one more member of an ``and`` / ``or``) beside
    # the one node any rule has.
    marks = text.count(";") + text.count("|") + len(_NEGATION.findall(text))
    if marks + 1 > MAX_NODES:
        return f"rule has more than {MAX_NODES} nodes"
    if text.count("(") > _MAX_PARENTHESES:
        return f"rule has more than {_MAX_PARENTHESES} parentheses"
    return None


def _parse(text: str, start: str) -> Any:
    if len(text) > MAX_TEXT:
        raise RuleError(f"{start} is {len(text)} characters long; the limit is {MAX_TEXT}")
    if not text.strip():
        raise RuleError(f"{start} is empty")
    if (why := _too_large(text)) is not None:
        raise RuleError(f"{start} '{clip(text)}': {why}")
    try:
        tree = _PARSER.parse(text, start=start)
        return _ToTree().transform(tree)
    except UnexpectedInput as exc:
        raise RuleError(_syntax_message(text, start, exc)) from None
    except Exception as exc:  # a RuleError raised inside the transformer arrives wrapped
        inner = getattr(exc, "orig_exc", None)
        if isinstance(inner, RuleError):
            raise RuleError(f"{start} '{clip(text)}': {inner}") from None
        raise


def _syntax_message(text: str, start: str, exc: UnexpectedInput) -> str:
    where = f"{start} '{clip(text)}'"
    if isinstance(exc, UnexpectedEOF):
        return f"{where}: ends too early"
    at = _position(text, exc)
    if isinstance(exc, UnexpectedCharacters):
        position = exc.pos_in_stream or 0
        return f"{where}: unexpected character {text[position : position + 1]!r} at {at}"
    if isinstance(exc, UnexpectedToken):
        if exc.token.type == "$END":
            return f"{where}: ends too early"
        return f"{where}: unexpected {str(exc.token)!r} at {at}"
    return f"{where}: cannot be read at {at}"


#: The line breaks the grammar skips as white space (``\s``) and ``str.splitlines`` splits
#: at: lark's own line and column count ``\n`` only, so after a lone ``\r`` or U+2028 the
#: column ran on from the previous line.
_LINE_BREAK = re.compile("\r\n|[\n\r\v\f\x1c-\x1e\x85\u2028\u2029]")


def _position(text: str, exc: UnexpectedInput) -> str:
    """Where the parser stopped: the column, and the line when the text has several (a
    column alone points into every line of a filter pasted from a config file)."""
    offset = getattr(exc, "pos_in_stream", None)
    if offset is None:
        return f"column {getattr(exc, 'column', '?')}"
    starts = [0, *(b.end() for b in _LINE_BREAK.finditer(text) if b.end() <= offset)]
    column = offset - starts[-1] + 1
    if not _LINE_BREAK.search(text):
        return f"column {column}"
    return f"line {len(starts)}, column {column}"


@functools.lru_cache(maxsize=1024)
def parse_filter(text: str) -> Node:
    """One ``filter`` parameter as a rule tree; ``RuleError`` saying what is wrong."""
    node: Node = _parse(text, "filter")
    _checked("filter", text, node)
    return node


@functools.lru_cache(maxsize=1024)
def parse_boost(text: str) -> tuple[Node, float]:
    """One ``boost`` parameter: ``RULE`` or ``RULE^WEIGHT`` (weight 1 when omitted)."""
    node, weight = _parse(text, "boost")
    _checked("boost", text, node)
    return node, weight


@functools.lru_cache(maxsize=256)
def parse_cap(text: str) -> tuple[str, int]:
    """One ``cap`` parameter: ``ATTRIBUTE:N``, at most N items per value of the attribute."""
    attr, limit = _parse(text, "cap")
    if limit < 1:
        raise RuleError(f"cap '{clip(text)}': the limit must be at least 1")
    return str(attr), int(limit)


def conjunction(rules: list[Node]) -> Node | None:
    """Several ``filter`` parameters as one rule (they all must hold)."""
    if not rules:
        return None
    return rules[0] if len(rules) == 1 else And.model_construct(op="and", rules=list(rules))
