"""The rule language (``app.rules``): property tests of the grammar, the canonical form
and the compiled masks against a plain per-item reading of the documented semantics."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.rules import query
from app.rules.ast import (
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
    is_bare,
    render,
)
from app.rules.catalog import AttributeIndex
from app.rules.compile import ItemTable
from app.rules.errors import RuleError
from app.rules.query import parse_boost, parse_cap, parse_filter
from app.rules.request import rules_from_query
from app.rules.resolve import resolve

GENRES = ["Comedy", "Drama", "Film Noir", "Children's", "Sci-Fi", "all", "x,y", 'say "hi"']
NAMES = ["genres", "year", "nums", "lang", "free"]

# --------------------------------------------------------------------------- strategies

strings = st.sampled_from(GENRES)
numbers = st.integers(-3000, 3000) | st.floats(-1e6, 1e6, allow_nan=False).map(
    lambda f: round(f, 3)
)


def _leaf() -> st.SearchStrategy[Node]:
    genre_values = st.lists(strings, min_size=1, max_size=4)
    year_values = st.lists(numbers, min_size=1, max_size=3)
    bounds = st.fixed_dictionaries(
        {},
        optional={"gt": numbers, "gte": numbers, "lt": numbers, "lte": numbers},
    ).filter(bool)
    return st.one_of(
        st.builds(lambda v: Eq(attr="genres", value=v), strings),
        st.builds(lambda v: AnyOf(attr="genres", values=v), genre_values),
        st.builds(lambda v: AllOf(attr="genres", values=v), genre_values),
        st.builds(lambda v: AnyOf(attr="year", values=v), year_values),
        st.builds(
            lambda v: AnyOf(attr="lang", values=v), st.lists(strings, min_size=1, max_size=2)
        ),
        st.builds(lambda b: Range(attr="year", **b), bounds),
        st.builds(lambda b: Range(attr="nums", **b), bounds),
        st.builds(lambda a: Exists(attr=a), st.sampled_from(NAMES)),
    )


rules: st.SearchStrategy[Node] = st.recursive(
    _leaf(),
    lambda inner: st.one_of(
        st.builds(lambda r: Not(rule=r), inner),
        st.builds(lambda rs: And(rules=rs), st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda rs: Or(rules=rs), st.lists(inner, min_size=1, max_size=3)),
    ),
    max_leaves=8,
)


def _catalog(draw: st.DrawFn) -> dict[str, dict[str, Any]]:
    items: dict[str, dict[str, Any]] = {}
    for n in range(draw(st.integers(1, 25))):
        attributes: dict[str, Any] = {}
        if draw(st.booleans()):
            attributes["genres"] = draw(st.lists(strings, max_size=3, unique=True))
        if draw(st.booleans()):
            attributes["year"] = draw(numbers)
        if draw(st.booleans()):
            attributes["nums"] = draw(st.lists(numbers, max_size=3))
        if draw(st.booleans()):
            attributes["lang"] = draw(strings)
        if draw(st.booleans()):
            attributes["free"] = draw(st.sampled_from([None, [], [None], [None, None], True]))
        items[str(n)] = attributes
    # every attribute with its kind somewhere, so that every generated rule resolves
    items["kinds"] = {
        "genres": ["Comedy"],
        "year": 1,
        "nums": [1],
        "lang": "Drama",
        "free": True,
    }
    return items


catalogs = st.composite(_catalog)()

# --------------------------------------------------------------------------- reference semantics


def _elements(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) == float(b)
    return type(a) is type(b) and a == b


def holds(rule: Node, attributes: dict[str, Any]) -> bool:
    """docs/rules.md, item by item: the meaning the compiled masks must have."""
    if isinstance(rule, Eq):
        return any(_equal(e, rule.value) for e in _elements(attributes.get(rule.attr)))
    if isinstance(rule, AnyOf):
        own = _elements(attributes.get(rule.attr))
        return any(_equal(e, v) for e in own for v in rule.values)
    if isinstance(rule, AllOf):
        own = _elements(attributes.get(rule.attr))
        return all(any(_equal(e, v) for e in own) for v in rule.values)
    if isinstance(rule, Range):
        for e in _elements(attributes.get(rule.attr)):
            if isinstance(e, bool) or not isinstance(e, int | float):
                continue
            if rule.gt is not None and not e > rule.gt:
                continue
            if rule.gte is not None and not e >= rule.gte:
                continue
            if rule.lt is not None and not e < rule.lt:
                continue
            if rule.lte is not None and not e <= rule.lte:
                continue
            return True
        return False
    if isinstance(rule, Exists):  # not null, not a list without a non-null element
        return any(e is not None for e in _elements(attributes.get(rule.attr)))
    if isinstance(rule, Not):
        return not holds(rule.rule, attributes)
    if isinstance(rule, And):
        return all(holds(r, attributes) for r in rule.rules)
    assert isinstance(rule, Or)
    return any(holds(r, attributes) for r in rule.rules)


# --------------------------------------------------------------------------- properties


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rules, catalogs)
def test_compiled_mask_equals_the_per_item_meaning(rule: Node, catalog: dict[str, Any]) -> None:
    index = AttributeIndex()
    index.update(catalog.items())
    snapshot = index.snapshot()
    item_ids = [*catalog, "not-in-catalog"]
    resolved = resolve(rule, snapshot.kinds)
    mask = ItemTable(item_ids, snapshot).evaluate(resolved)
    expected = np.array([holds(rule, catalog.get(i, {})) for i in item_ids])
    assert mask.tolist() == expected.tolist()


@settings(max_examples=200, deadline=None)
@given(rules, catalogs)
def test_canonical_form_reads_back_to_itself(rule: Node, catalog: dict[str, Any]) -> None:
    """render(resolve(r)) is a query string that parses and resolves to the same tree."""
    index = AttributeIndex()
    index.update(catalog.items())
    kinds = index.snapshot().kinds
    canonical = render(resolve(rule, kinds))
    again = render(resolve(parse_filter(canonical), kinds))
    assert again == canonical


@settings(max_examples=100, deadline=None)
@given(st.lists(strings, min_size=1, max_size=5), st.randoms())
def test_canonical_form_ignores_order_and_duplicates(values: list[str], rnd: Any) -> None:
    kinds = {"genres": frozenset({"string"}), "year": frozenset({"number"})}
    shuffled = list(values) * 2
    rnd.shuffle(shuffled)
    a = AnyOf(attr="genres", values=values)
    b = AnyOf(attr="genres", values=shuffled)
    assert render(resolve(a, kinds)) == render(resolve(b, kinds))
    r1 = And(rules=[a, Range(attr="year", gte=1990)])
    r2 = And(rules=[And(rules=[Range(attr="year", gte=1990)]), b, b])
    assert render(resolve(r1, kinds)) == render(resolve(r2, kinds))
    assert render(resolve(Not(rule=Not(rule=a)), kinds)) == render(resolve(a, kinds))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_any_text_parses_or_is_a_rule_error(text: str) -> None:
    """No input makes the parser fail any other way (a 500 in the API)."""
    for parse in (parse_filter, parse_boost, parse_cap):
        try:
            parse(text)
        except RuleError as exc:
            assert str(exc)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from('\\"u0dx8a, '), max_size=12))
def test_any_quoted_value_parses_or_is_a_rule_error(text: str) -> None:
    """Inside quotes the grammar lets any backslash escape through to the JSON decoder
    (``"\\x"`` was a 500); an alphabet of escapes and hex digits reaches those cases."""
    try:
        parse_filter(f'genres:"{text}"')
    except RuleError as exc:
        assert str(exc)


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=30))
def test_bare_values_read_back_as_written(text: str) -> None:
    if not is_bare(text):
        return
    parsed = parse_filter(f"genres:{text}")
    assert isinstance(parsed, AnyOf) and parsed.values == [text]
    assert isinstance(parsed.values[0], Bare)


# --------------------------------------------------------------------------- examples


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("genres:Comedy", AnyOf(attr="genres", values=["Comedy"])),
        ("genres:Comedy,Drama", AnyOf(attr="genres", values=["Comedy", "Drama"])),
        ("genres:any(Comedy,Drama)", AnyOf(attr="genres", values=["Comedy", "Drama"])),
        ("genres:all(Comedy,Drama)", AllOf(attr="genres", values=["Comedy", "Drama"])),
        ("year>=1990", Range(attr="year", gte=1990)),
        ("1990<=year<2000", Range(attr="year", gte=1990, lt=2000)),
        ("-1.5<x<=2e3", Range(attr="x", gt=-1.5, lte=2000.0)),
        ("year:*", Exists(attr="year")),
        ("!genres:Horror", Not(rule=AnyOf(attr="genres", values=["Horror"]))),
        (
            "genres:Comedy|year<1960;lang:en",
            Or(
                rules=[
                    AnyOf(attr="genres", values=["Comedy"]),
                    And(rules=[Range(attr="year", lt=1960), AnyOf(attr="lang", values=["en"])]),
                ]
            ),
        ),
        ('title:"a, b (c)"', AnyOf(attr="title", values=["a, b (c)"])),
    ],
)
def test_examples_of_the_documented_syntax(text: str, expected: Node) -> None:
    assert parse_filter(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("genres", "ends too early"),
        ("year>abc", "unexpected 'abc' at column 6"),
        ("genres:Comedy;", "ends too early"),
        ("genres:Comedy)", "unexpected ')'"),
        ("genres~Comedy", "unexpected '~Comedy' at column 7"),
        ("x:" + ",".join(["v"] * 300), "at most 256 per rule"),
        ("!" * 20 + "a:b", "nested deeper than 8 levels"),
        ("(" * 3000 + "a:b" + ")" * 3000, "characters long; the limit is 4096"),
        ("year>1e999", "not finite"),
        ("1990>year<2000", "written LOW<NAME<HIGH"),
        ('genres:"\\x"', "not a JSON string: Invalid"),
        ('genres:"\\ud800"', "lone surrogate"),
        ('genres:"a\\u0000"', "NUL character"),
    ],
)
def test_malformed_filters_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(RuleError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_filter(text)


def test_resolve_types_values_from_the_catalog_and_refuses_what_cannot_match() -> None:
    kinds = {"year": frozenset({"number"}), "genres": frozenset({"string"})}
    assert resolve(parse_filter("year:1995"), kinds) == AnyOf(attr="year", values=[1995])
    assert resolve(parse_filter("genres:1995"), kinds) == AnyOf(attr="genres", values=["1995"])
    for rule, message in [
        (parse_filter("year:abc"), "attribute 'year' holds numbers; 'abc' is not one"),
        (parse_filter("genres>3"), "only numbers can be compared"),
        (parse_filter("colour:red"), "unknown attribute 'colour'; the catalog's attributes are"),
        (Eq(attr="year", value="1995"), "'1995' is a string"),
        (Eq(attr="genres", value=3), "3 is a number"),
        (Eq(attr="year", value=True), "holds numbers; true is true/false"),  # JSON's word
    ]:
        with pytest.raises(RuleError, match=message):
            resolve(rule, kinds)


def test_a_two_bound_range_holds_when_one_element_is_within_both_bounds() -> None:
    # docs/rules.md: "a range when one numeric element is inside"; [1985, 2005] has none.
    catalog = {"1": {"nums": [1985, 2005]}, "2": {"nums": [1995]}, "3": {"nums": 1995}}
    index = AttributeIndex()
    index.update(catalog.items())
    snapshot = index.snapshot()
    table = ItemTable(list(catalog), snapshot)
    for rule in (
        Range(attr="nums", gte=1990, lt=2000),
        Range(attr="nums", gt=1980, gte=1990, lt=2000, lte=2005),  # tightest bounds: the same
        parse_filter("1990<=nums<2000"),
    ):
        resolved = resolve(rule, snapshot.kinds)
        assert render(resolved) == "1990<=nums<2000"
        assert table.evaluate(resolved).tolist() == [False, True, True]
    # Two rules, each met by some element: the list item passes both.
    both = resolve(parse_filter("nums>=1990;nums<2000"), snapshot.kinds)
    assert table.evaluate(both).tolist() == [True, True, True]


def test_names_no_rule_can_name_are_left_out_of_the_unknown_attribute_message() -> None:
    # Stored before the catalog refused them: they break nothing, and are not offered.
    index = AttributeIndex()
    index.update([("1", {"release year": 1999, "": "x", "género": "y", "year": 1999})])
    table = ItemTable(["1"], index.snapshot())
    with pytest.raises(RuleError) as caught:
        resolve(parse_filter("colour:red"), index.snapshot().kinds)
    assert str(caught.value).endswith("the catalog's attributes are: year")
    assert table.evaluate(resolve(parse_filter("year:1999"), index.snapshot().kinds)).all()


def test_a_list_of_nulls_is_absent() -> None:
    catalog = {"11": [None], "12": [], "13": None, "14": ["x", None], "15": "", "16": "y"}
    index = AttributeIndex()
    index.update((i, {"opt": v}) for i, v in catalog.items())
    table = ItemTable(list(catalog), index.snapshot())
    present = table.evaluate(resolve(parse_filter("opt:*"), index.snapshot().kinds))
    assert present.tolist() == [False, False, False, True, True, True]


def test_boost_and_cap_forms() -> None:
    assert parse_boost("genres:Comedy") == (AnyOf(attr="genres", values=["Comedy"]), 1.0)
    assert parse_boost("genres:Comedy^-0.5")[1] == -0.5
    assert parse_cap("genres:3") == ("genres", 3)
    with pytest.raises(RuleError, match="outside"):
        parse_boost("genres:Comedy^1000")
    with pytest.raises(RuleError, match="at least 1"):
        parse_cap("genres:0")


# --------------------------------------------------------------------------- number syntax

NUMBER_KINDS = {
    "year": frozenset({"number"}),
    "genres": frozenset({"string"}),
    "mixed": frozenset({"number", "string"}),
}


@pytest.mark.parametrize("text", ["year:1_995", "year:1_9.9_5", "year:1995_", "year:1e1_0"])
def test_a_bare_number_with_underscores_is_refused_not_read_as_digits(text: str) -> None:
    """Python's ``float("1_995")`` is 1995.0; the language's numbers are the grammar's
    NUMBER (as in JSON: digits, fraction, exponent), so ``year:1_995`` is a 422 that
    says how a number is written, not a filter on the year 1995."""
    with pytest.raises(RuleError, match=r"attribute 'year' holds numbers; '.*' is not one \("):
        resolve(parse_filter(text), NUMBER_KINDS)


def test_a_bare_value_not_written_as_a_number_is_a_string_where_strings_are_held() -> None:
    assert resolve(parse_filter("mixed:1_995"), NUMBER_KINDS) == AnyOf(
        attr="mixed", values=["1_995"]
    )
    assert resolve(parse_filter("mixed:1995"), NUMBER_KINDS) == AnyOf(attr="mixed", values=[1995])
    for text, number in [("+5", 5), (".5", 0.5), ("5.", 5), ("1e3", 1000), ("-0", 0)]:
        assert resolve(parse_filter(f"year:{text}"), NUMBER_KINDS) == AnyOf(
            attr="year", values=[number]
        )


def test_numbers_are_ascii_digits_not_any_unicode_digit() -> None:
    """The grammar's ``\\d`` and Python's ``int``/``float`` take every Unicode decimal digit:
    ``year>=١٩٩٥`` (Arabic-Indic) and ``year:１９９５`` (full-width) were the year 1995 and
    ``cap=genres:٣`` a cap of 3. A number is written in ASCII digits, as in JSON."""
    for text in ("year>=١٩٩٥", "١٩٩٠<=year<2000"):
        with pytest.raises(RuleError, match="unexpected"):
            parse_filter(text)
    for text in ("year:١٩٩٥", "year:１９９５"):
        with pytest.raises(RuleError, match="is not one"):
            resolve(parse_filter(text), NUMBER_KINDS)
    with pytest.raises(RuleError, match="unexpected"):
        parse_cap("genres:٣")
    with pytest.raises(RuleError, match="unexpected"):
        parse_boost("genres:x^٠.٥")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("genres:Comedy\n;year>abc", "unexpected 'abc' at line 2, column 7"),
        ("genres:Comedy;\n\n  year~3", "unexpected '~3' at line 3, column 7"),
        ('genres:Comedy;\n\n  year:"a', "unexpected character '\"' at line 3, column 8"),
        ("genres:Comedy\r\n;year>abc", "unexpected 'abc' at line 2, column 7"),
        ("year>abc", "unexpected 'abc' at column 6"),  # one line: the column says it
        # Every line break the grammar skips as white space counts, not only "\n".
        ("genres:Comedy\r;year>abc", "unexpected 'abc' at line 2, column 7"),
        ("genres:Comedy\u2028;year>abc", "unexpected 'abc' at line 2, column 7"),
        ("a:b\u2029;genres:Comedy\r\n;year>abc", "unexpected 'abc' at line 3, column 7"),
    ],
)
def test_an_error_in_a_filter_of_several_lines_says_the_line(text: str, message: str) -> None:
    """A column alone points into every line of a multi-line filter (pasted from a
    config file): the message names the line too."""
    with pytest.raises(RuleError, match=message):
        parse_filter(text)


@pytest.mark.parametrize(
    ("text", "quoted"),
    [
        ("genres:Comedy\n;year>abc", "filter 'genres:Comedy\\n;year>abc'"),
        ("genres:Comedy\r\n;year>abc", "filter 'genres:Comedy\\r\\n;year>abc'"),
        ("genres:Comedy\u2028;year>abc", "filter 'genres:Comedy\\u2028;year>abc'"),
    ],
)
def test_a_filter_of_several_lines_is_quoted_on_one_line(text: str, quoted: str) -> None:
    """The message quoted the filter as sent: its line breaks split the message (and a
    log line) over several lines. They are quoted escaped, as Python writes them."""
    with pytest.raises(RuleError) as caught:
        parse_filter(text)
    message = str(caught.value)
    assert message.startswith(quoted + ": "), message
    assert not set(message) & {"\n", "\r", "\u2028"}, message


CODE_KINDS = {"code": frozenset({"number"})}


@pytest.mark.parametrize(
    "rule",
    [
        parse_filter("code:9007199254740993"),
        parse_filter("code:any(1,-9007199254740993)"),
        parse_filter("code>9007199254740993"),
        parse_filter("1<code<=18014398509481985"),
        Eq(attr="code", value=2**53 + 1),
        AnyOf(attr="code", values=[1, 2**63 - 1]),
        Range(attr="code", gte=2**53 + 1),
    ],
)
def test_an_integer_a_double_cannot_hold_is_refused_not_rounded(rule: Node) -> None:
    """Numbers compare as doubles (docs/rules.md): ``code:9007199254740993`` silently
    became 9007199254740992 and kept the item whose code is that. A literal that would
    change meaning is a 422 saying so, in either form."""
    with pytest.raises(RuleError, match=r"attribute 'code': integer -?\d+ has no exact double"):
        resolve(rule, CODE_KINDS)


def test_an_integer_past_2_53_that_a_double_holds_exactly_still_matches() -> None:
    index = AttributeIndex()
    catalog = {"a": {"code": 2**53}, "b": {"code": 2**53 + 2}, "c": {"code": 2**62}}
    index.update(catalog.items())
    snapshot = index.snapshot()
    table = ItemTable(list(catalog), snapshot)
    for text, expected in [
        ("code:9007199254740994", [False, True, False]),
        (f"code:{2**62}", [False, False, True]),
        ("code>9007199254740992", [False, True, True]),
        ("code:9007199254740992.0", [True, False, False]),
    ]:
        assert table.evaluate(resolve(parse_filter(text), snapshot.kinds)).tolist() == expected


class _NoParser:
    def parse(self, text: str, start: str) -> None:
        raise AssertionError(f"parsed {text[:20]!r}...")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("!" * 4000 + "a:b", "more than 64 nodes"),
        (";".join(["a:b"] * 65), "more than 64 nodes"),
        ("|".join(["a:b"] * 65), "more than 64 nodes"),
        ("(" * 129 + "a:b" + ")" * 129, "more than 128 parentheses"),
        ('a:"x";' + "!" * 100 + "b:c", "more than 64 nodes"),  # a quote does not hide them
    ],
)
def test_text_that_cannot_be_within_the_bounds_is_refused_before_it_is_parsed(
    text: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lark's parser spends ~10 us of the event loop per token: 4,096 characters of ``!``
    were parsed (and 4,000 nodes built) before the depth check refused them."""
    monkeypatch.setattr(query, "_PARSER", _NoParser())
    with pytest.raises(RuleError, match=message):
        parse_filter(text)


@pytest.mark.parametrize(
    "text",
    [
        "title:" + ",".join(f"Wow{i}!" for i in range(100)),  # ``!`` inside bare values
        'title:"' + ";" * 100 + '"',  # marks inside a quoted value
        'title:"a\\"|' + "|" * 70 + '"',  # an escaped quote inside it
        "(" * 60 + "a:b" + ")" * 60,  # redundant parentheses within the count
    ],
)
def test_marks_that_add_no_node_are_not_counted(text: str) -> None:
    assert parse_filter(text) is not None


def test_nesting_past_the_depth_is_refused_as_the_tree_is_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The bounds hold while the nodes are built, bottom up: not 64 ``Not`` nodes first."""
    built: list[Any] = []
    construct = Not.model_construct

    def counted(*args: Any, **kwargs: Any) -> Not:
        built.append(1)
        return construct(*args, **kwargs)

    monkeypatch.setattr(Not, "model_construct", counted)
    with pytest.raises(RuleError, match="nested deeper than 8 levels"):
        parse_filter("!" * 60 + "a:b")
    assert len(built) == 8  # the ninth level (the leaf is the first) is refused


@pytest.mark.parametrize(
    ("filters", "boosts", "message"),
    [
        (["genres:Comedy", " "], [], "filter 2 of 2 is empty"),
        (["genres:Comedy", "year>1990", "year>"], [], "filter 3 of 3 'year>': ends too early"),
        ([], ["genres:Comedy^2", "year>1990^x"], "boost 2 of 2 'year>1990^x': "),
        (["year>"], [], "filter 'year>': ends too early"),  # one: no number to give
    ],
)
def test_an_error_in_one_of_several_parameters_says_which(
    filters: list[str], boosts: list[str], message: str
) -> None:
    """With several ``filter`` parameters, "filter is empty" did not say which one."""
    with pytest.raises(RuleError) as caught:
        rules_from_query(filters, boosts, None, None)
    assert str(caught.value).startswith(message), str(caught.value)
