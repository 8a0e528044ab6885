"""Business rules on every list, end to end on MovieLens-100K (embedded app, u.item catalog)."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.rules.compile import RuleCompiler
from tests.app.rules.conftest import ADMIN

USERS = ["1", "42", "196", "405", "655"]


def _recs(client: TestClient, user: str, **params: Any) -> dict[str, Any]:
    r = client.get(f"/v1/users/{user}/recommendations", params=params)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _ids(body: dict[str, Any]) -> list[str]:
    return [it["item_id"] for it in body["items"]]


def test_a_genre_filter_returns_only_that_genre_and_still_k_items(
    ml100k_client: TestClient,
    genres_of: dict[str, set[str]],
    seen_by: Callable[[str], set[str]],
) -> None:
    for user in USERS:
        candidates = {i for i, g in genres_of.items() if "Documentary" in g} - seen_by(user)
        assert len(candidates) >= 10  # enough candidates: the list must stay full
        body = _recs(ml100k_client, user, k=10, filter="genres:Documentary")
        assert (body["model"], body["version"]) == ("bpr-mf", "1")
        assert len(body["items"]) == 10 and "short_by" not in body
        assert all("Documentary" in genres_of[i] for i in _ids(body))
        assert not set(_ids(body)) & seen_by(user)


def test_several_filters_and_the_json_form_mean_the_same(
    ml100k_client: TestClient, genres_of: dict[str, set[str]]
) -> None:
    query = _recs(
        ml100k_client, "1", k=20, filter=["genres:Comedy,Romance", "year>=1990", "!genres:Drama"]
    )
    rule = {
        "op": "and",
        "rules": [
            {"op": "any", "attr": "genres", "values": ["Romance", "Comedy"]},
            {"op": "range", "attr": "year", "gte": 1990},
            {"op": "not", "rule": {"op": "eq", "attr": "genres", "value": "Drama"}},
        ],
    }
    r = ml100k_client.post(
        "/v1/recommendations",
        json={"history": [{"item_id": "50", "rating": 5}], "k": 20, "rules": {"filter": rule}},
    )
    assert r.status_code == 200, r.text
    for items in (_ids(query), _ids(r.json())):
        assert len(items) == 20
        for item in items:
            genres = genres_of[item]
            assert genres & {"Comedy", "Romance"} and "Drama" not in genres


def test_a_boost_adds_its_weight_times_the_score_spread(ml100k_client: TestClient) -> None:
    plain = _recs(ml100k_client, "42", k=100)
    boosted = _recs(ml100k_client, "42", k=100, boost="genres:Comedy^0.5")
    unit = boosted["boost_unit"]
    assert unit > 0 and "boost_unit" not in plain
    before = {it["item_id"]: it["score"] for it in plain["items"]}
    after = {it["item_id"]: it["score"] for it in boosted["items"]}
    comedies = set(_ids(_recs(ml100k_client, "42", k=100, filter="genres:Comedy")))
    both = set(before) & set(after)
    assert both & comedies and both - comedies  # the check below sees both kinds of item
    for item in both:
        moved = after[item] - before[item]
        assert moved == pytest.approx(0.5 * unit if item in comedies else 0.0, abs=1e-4)
    # Comedies moved up: more of them in the boosted top 20.
    assert len(set(_ids(boosted)[:20]) & comedies) > len(set(_ids(plain)[:20]) & comedies)


def test_a_negative_boost_buries_and_weights_add(ml100k_client: TestClient) -> None:
    dramas = set(_ids(_recs(ml100k_client, "1", k=100, filter="genres:Drama")))
    buried = _recs(ml100k_client, "1", k=10, boost="genres:Drama^-100")
    assert not set(_ids(buried)) & dramas
    twice = _recs(ml100k_client, "1", k=50, boost=["genres:Drama^0.25", "genres:Drama^0.25"])
    once = _recs(ml100k_client, "1", k=50, boost="genres:Drama^0.5")
    assert _ids(twice) == _ids(once)


def test_a_per_genre_cap_holds_and_keeps_k_items(
    ml100k_client: TestClient, genres_of: dict[str, set[str]]
) -> None:
    for user in USERS[:3]:
        body = _recs(ml100k_client, user, k=15, cap="genres:2")
        assert len(body["items"]) == 15
        counts: dict[str, int] = {}
        for item in _ids(body):
            for genre in genres_of[item]:
                counts[genre] = counts.get(genre, 0) + 1
        assert max(counts.values()) <= 2
        plain = _recs(ml100k_client, user, k=15)
        assert _ids(body)[0] == _ids(plain)[0]  # the best item is never capped out


def test_mmr_keeps_k_distinct_items_and_changes_the_list(ml100k_client: TestClient) -> None:
    plain = _recs(ml100k_client, "196", k=20)
    diverse = _recs(ml100k_client, "196", k=20, mmr=0.3)
    ids = _ids(diverse)
    assert len(ids) == len(set(ids)) == 20
    assert ids[0] == _ids(plain)[0] and ids != _ids(plain)
    relevance_only = _recs(ml100k_client, "196", k=20, mmr=1)
    assert _ids(relevance_only) == _ids(plain)


def test_rules_combine_with_exclude_seen_include_and_exclude(
    ml100k_client: TestClient,
    genres_of: dict[str, set[str]],
    seen_by: Callable[[str], set[str]],
) -> None:
    """An item is listed only when every filter lets it through (docs/rules.md)."""
    user = "1"
    seen = seen_by(user)
    comedies = [i for i, g in genres_of.items() if "Comedy" in g]
    include = [*comedies[:30], *[i for i, g in genres_of.items() if "Comedy" not in g][:30]]
    exclude = [i for i in comedies[:30] if i not in seen][:3]
    body = _recs(
        ml100k_client, user, k=50, filter="genres:Comedy", include=include, exclude=exclude
    )
    expected = {i for i in include if "Comedy" in genres_of[i]} - set(exclude) - seen
    assert set(_ids(body)) == expected
    assert body["short_by"] == 50 - len(expected)
    everything = _recs(
        ml100k_client,
        user,
        k=50,
        filter="genres:Comedy",
        include=include,
        exclude=exclude,
        exclude_seen=False,
    )
    assert set(_ids(everything)) == {i for i in include if "Comedy" in genres_of[i]} - set(exclude)


def test_short_by_says_when_the_rules_leave_fewer_than_k(ml100k_client: TestClient) -> None:
    body = _recs(ml100k_client, "stranger", k=10, filter="genres:unknown")
    assert len(body["items"]) == 2 and body["short_by"] == 8  # two items have genre unknown
    assert body["fallback"] is True and body["model"] == "bpr-mf"
    metrics = ml100k_client.get("/metrics").text
    assert 'genrec_short_lists_total{endpoint="user"} 1.0' in metrics


def test_similar_items_take_the_same_rules(
    ml100k_client: TestClient, genres_of: dict[str, set[str]]
) -> None:
    r = ml100k_client.get(
        "/v1/items/50/similar", params={"k": 10, "filter": "genres:Comedy", "cap": "year:2"}
    )
    assert r.status_code == 200, r.text
    items = _ids(r.json())
    assert len(items) == 10 and "50" not in items
    assert all("Comedy" in genres_of[i] for i in items)
    years = [ml100k_client.get(f"/v1/items/{i}").json()["attributes"].get("year") for i in items]
    assert max(years.count(y) for y in years) <= 2
    # Every item is a comedy, so at most 3 per genre leaves 3: the list says it is short.
    capped = ml100k_client.get(
        "/v1/items/50/similar", params={"k": 10, "filter": "genres:Comedy", "cap": "genres:3"}
    ).json()
    assert len(capped["items"]) == 3 and capped["short_by"] == 7
    r = ml100k_client.get("/v1/items/50/similar", params={"k": 10, "filter": "colour:red"})
    assert r.status_code == 422 and "unknown attribute 'colour'" in r.json()["message"]


def test_a_catalog_change_while_serving_updates_the_masks(ml100k_client: TestClient) -> None:
    before = _recs(ml100k_client, "42", k=100, filter="genres:Documentary")
    top_other = next(
        i
        for i in _ids(_recs(ml100k_client, "42", k=5, filter="!genres:Documentary"))
        if i not in _ids(before)
    )
    item = ml100k_client.get(f"/v1/items/{top_other}").json()
    attributes = {**item["attributes"], "genres": [*item["attributes"]["genres"], "Documentary"]}
    r = ml100k_client.put(
        f"/v1/items/{top_other}",
        json={"title": item["title"], "attributes": attributes},
        headers=ADMIN,
    )
    assert r.status_code == 200, r.text
    after = _recs(ml100k_client, "42", k=100, filter="genres:Documentary")
    assert top_other in _ids(after) and top_other not in _ids(before)
    assert _ids(after)[0] == top_other  # it was the user's best non-documentary


def test_a_rule_on_an_attribute_no_item_holds_any_more_still_answers(
    ml100k_client: TestClient,
) -> None:
    """A promotion ends: the last item with ``sale`` drops it. The catalog still records
    the attribute's kind, so a client's filter and boost keep answering (nothing matches)
    instead of turning into a 422 "unknown attribute" that breaks its page."""
    item = ml100k_client.get("/v1/items/1").json()
    on_sale = {**item["attributes"], "sale": True}
    r = ml100k_client.put(
        "/v1/items/1", json={"title": item["title"], "attributes": on_sale}, headers=ADMIN
    )
    assert r.status_code == 200, r.text
    assert _ids(_recs(ml100k_client, "stranger", k=5, filter="sale:true")) == ["1"]
    r = ml100k_client.put(
        "/v1/items/1",
        json={"title": item["title"], "attributes": item["attributes"]},
        headers=ADMIN,
    )
    assert r.status_code == 200, r.text
    plain = _ids(_recs(ml100k_client, "stranger", k=5))
    filtered = _recs(ml100k_client, "stranger", k=5, filter="sale:true")
    assert filtered["items"] == [] and filtered["short_by"] == 5
    assert _ids(_recs(ml100k_client, "stranger", k=5, filter="!sale:*")) == plain
    assert _ids(_recs(ml100k_client, "stranger", k=5, boost="sale:true^3")) == plain
    assert _ids(_recs(ml100k_client, "stranger", k=5, cap="sale:1")) == plain
    r = ml100k_client.get("/v1/users/stranger/recommendations", params={"filter": "sale:1"})
    assert r.status_code == 422 and "holds true/false" in r.json()["message"]  # kind kept


def test_the_catalog_keeps_one_kind_per_attribute(ml100k_client: TestClient) -> None:
    r = ml100k_client.put(
        "/v1/items/new-film", json={"attributes": {"year": "1995"}}, headers=ADMIN
    )
    assert r.status_code == 422
    assert (
        "attribute 'year' is a string here, but the catalog holds a number" in r.json()["message"]
    )
    r = ml100k_client.put(
        "/v1/items/new-film", json={"attributes": {"year": 1995, "genres": []}}, headers=ADMIN
    )
    assert r.status_code == 201, r.text
    r = ml100k_client.put(
        "/v1/items/new-film", json={"attributes": {"meta": {"a": 1}}}, headers=ADMIN
    )
    assert r.status_code == 422 and "flat list" in r.json()["message"]
    for wide in (10**400, [1, -(2**63) - 1]):
        r = ml100k_client.put(
            "/v1/items/new-film", json={"attributes": {"year": wide}}, headers=ADMIN
        )
        assert r.status_code == 422, r.text
        assert "is outside the 64-bit range" in r.json()["message"]
        assert len(r.json()["message"]) < 200  # the integer clipped
    r = ml100k_client.put(
        "/v1/items/new-film", json={"attributes": {"release year": 1995}}, headers=ADMIN
    )
    assert r.status_code == 422, r.text
    assert "'release year' cannot be named by a rule" in r.json()["message"]


def _deep(levels: int) -> str:
    """``levels`` nested "not" rules as JSON text (json.dumps would overflow the stack)."""
    return '{"op": "not", "rule": ' * levels + '{"op": "exists", "attr": "year"}' + "}" * levels


DEEP = _deep(500)
FINITE = "rules.boosts[0].weight: must be a finite number"
OPS = "eq, any, all, range, exists, and, or, not"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"filter": "genres"}, "ends too early"),
        ({"filter": "colour:red"}, "unknown attribute 'colour'"),
        ({"filter": "genres>3"}, "only numbers can be compared"),
        ({"filter": "year:abc"}, "'abc' is not one"),
        ({"filter": "!" * 50 + "genres:Comedy"}, "nested deeper than 8"),
        ({"filter": "genres:" + ",".join(["x"] * 10_000)}, "characters long"),
        ({"filter": "genres:" + ",".join(["x"] * 1_000)}, "at most 256 per rule"),
        ({"boost": "genres:Comedy^1e9"}, "outside"),
        ({"cap": "genres"}, "ends too early"),
        ({"cap": "title:2"}, "unknown attribute 'title'"),
        ({"mmr": "2"}, "mmr must be between 0 and 1"),
        ({"filter": ["genres:Comedy"] * 17}, "at most 16"),
        ({"cap": "genres:9999999"}, "cap 'genres:9999999': the limit is at most 1000"),
        ({"filter": "year>=" + "1" * 400}, "111111111... (400 digits) is outside the 64-bit"),
        ({"filter": "year>=1" + "0" * 400 + ".5"}, "0000000000... is not finite"),
        ({"filter": "year:1e999"}, "attribute 'year': number 1e999 is not finite"),
        ({"boost": "genres:Comedy^1" + "0" * 400}, "0000000000... is not finite"),
        ({"filter": "year:1_995"}, "'1_995' is not one (a number is written as digits"),
        ({"filter": "year:9007199254740993"}, "it would mean 9007199254740992"),
    ],
)
def test_malformed_query_rules_are_clear_422s(
    ml100k_client: TestClient, params: dict[str, Any], message: str
) -> None:
    r = ml100k_client.get("/v1/users/1/recommendations", params=params)
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "invalid_rule" and message in r.json()["message"]


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ({"filter": {"op": "xor", "attr": "genres"}}, f"op 'xor' is not one of: {OPS}"),
        ({"filter": {"attr": "genres"}}, f"rules.filter: a rule needs op, one of: {OPS}"),
        (
            {"filter": {"op": "not", "rule": {"op": "and", "rules": [{"op": None}]}}},
            f"rules.filter: not.rule.and.rules[0]: op null is not one of: {OPS}",
        ),
        ({"filter": {"op": "any", "attr": "genres", "values": ["x"] * 10_000}}, "at most 256"),
        ({"filter": "DEEP"}, "nested deeper than 8 levels"),
        ({"filter": {"op": "range", "attr": "year", "gte": "1990"}}, "must be a finite number"),
        ({"filter": {"op": "eq", "attr": "year", "value": "1995"}}, "'1995' is a string"),
        ({"filter": {"op": "eq", "attr": "genres", "value": {"a": 1}}}, "must be a string"),
        ({"filter": {"op": "range", "attr": "year"}}, "at least one of gt, gte, lt, lte"),
        ({"filter": {"op": "eq", "attr": "no such", "value": 1}}, "should match pattern"),
        ({"boosts": [{"rule": {"op": "exists", "attr": "year"}, "weight": 101}]}, "less than"),
        ({"cap": {"attr": "genres", "max": 0}}, "greater than or equal to 1"),
        ({"mmr": -0.1}, "greater than or equal to 0"),
        ({"filter": {"op": "and", "rules": [{"op": "exists", "attr": "x"}] * 100}}, "nodes"),
        ({"filter": {"op": "eq", "attr": "year", "value": 10**400}}, "(401 digits) is outside"),
        ({"filter": {"op": "range", "attr": "year", "lt": -(10**400)}}, "the 64-bit range"),
        ({"filter": {"op": "eq", "attr": "year", "value": 2**53 + 1}}, "no exact double"),
        ({"filter": {"op": "eq", "attr": "genres", "value": "a\u0000"}}, "NUL character"),
        ({"filter": {"op": "all", "attr": "genres", "values": ["x", "\u0000"]}}, "NUL character"),
        # NaN is no number: not "should be greater than or equal to -100" (json.dumps: NaN)
        ({"boosts": [{"rule": {"op": "exists", "attr": "year"}, "weight": math.nan}]}, FINITE),
        ({"boosts": [{"rule": {"op": "exists", "attr": "year"}, "weight": "1"}]}, FINITE),
        ({"mmr": math.nan}, "rules.mmr: must be a finite number"),
        ({"mmr": -math.inf}, "rules.mmr: must be a finite number"),
    ],
)
def test_malformed_and_hostile_body_rules_are_clear_422s(
    ml100k_client: TestClient, rules: dict[str, Any], message: str
) -> None:
    body = json.dumps({"history": [{"item_id": "50"}], "rules": rules}).replace('"DEEP"', DEEP)
    r = ml100k_client.post(
        "/v1/recommendations", content=body, headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 422, r.text
    assert message in r.text


WIDE = "123456789012345678901234567890"  # 30 digits: past 64 bits, a finite double


@pytest.mark.parametrize(
    "request_",
    [
        ("GET", "/v1/users/1/recommendations", {"filter": f"year:{WIDE}"}),
        ("GET", "/v1/users/1/recommendations", {"filter": f"year>={WIDE}"}),
        ("GET", "/v1/users/1/recommendations", {"boost": f"year:{WIDE},1995^2"}),
        ("GET", "/v1/items/50/similar", {"filter": f"year:any(1995,{WIDE})"}),
        ("GET", "/v1/items/50/similar", {"boost": f"year<{WIDE}"}),
        ("POST", "/v1/recommendations", {"filter": {"op": "eq", "attr": "year", "value": "W"}}),
        ("POST", "/v1/recommendations", {"filter": {"op": "range", "attr": "year", "gte": "W"}}),
        (
            "POST",
            "/v1/recommendations",
            {"boosts": [{"rule": {"op": "eq", "attr": "year", "value": "W"}}]},
        ),
    ],
)
def test_an_integer_past_64_bits_is_the_same_422_in_both_forms(
    ml100k_client: TestClient, request_: tuple[str, str, dict[str, Any]]
) -> None:
    """The query form read ``year:<30 digits>`` as the float 1.2345678901234568e+29 (and
    matched nothing) where the JSON form refused the integer: both refuse it alike now."""
    method, path, rules = request_
    if method == "GET":
        r = ml100k_client.get(path, params={"k": 5, **rules})
    else:
        body = json.dumps({"history": [{"item_id": "50"}], "rules": rules})
        r = ml100k_client.post(
            path,
            content=body.replace('"W"', WIDE),
            headers={"Content-Type": "application/json"},
        )
    assert r.status_code == 422, r.text
    assert f"integer {WIDE} is outside the 64-bit range" in r.json()["message"]


@pytest.mark.parametrize("path", ["/v1/users/1/recommendations", "/v1/items/50/similar"])
@pytest.mark.parametrize("mmr", ["0_1", "0_5", "1_0", "١", "nan", "-inf"])
def test_mmr_in_the_query_string_is_a_number_as_the_rules_write_one(
    ml100k_client: TestClient, path: str, mmr: str
) -> None:
    """The query parameter was read by pydantic's lax float, which takes digit separators:
    ``mmr=0_1`` was 1.0 (relevance only) and answered 200, ``mmr=1_0`` was refused as 10."""
    r = ml100k_client.get(path, params={"k": 5, "mmr": mmr})
    assert r.status_code == 422, r.text
    assert (
        f"mmr: must be a number from 0 to 1 written in digits (e.g. 0.7), got {mmr!r}"
        in r.json()["message"]
    )
    assert ml100k_client.get(path, params={"k": 5, "mmr": "0.5"}).status_code == 200


@pytest.mark.parametrize(
    "op", ["x" * 1_000_000, {"k" * 1_000: "v" * 100_000}, ["y" * 1_000] * 1_000]
)
def test_an_unknown_op_is_quoted_clipped_not_echoed_whole(
    ml100k_client: TestClient, op: object
) -> None:
    """pydantic's tag error quoted the whole tag, twice (message and problems): a 1 MB
    ``op`` was a 2 MB answer (and a Python repr of an object ``op``)."""
    body = {"history": [{"item_id": "50"}], "rules": {"filter": {"op": op, "attr": "year"}}}
    r = ml100k_client.post("/v1/recommendations", json=body)
    assert r.status_code == 422
    assert f"is not one of: {OPS}" in r.json()["message"]
    assert len(r.content) < 2_000


def test_json_nesting_is_a_422_up_to_900_levels_and_past_the_reader_a_400(
    ml100k_client: TestClient,
) -> None:
    """docs/rules.md: what really happens at each depth."""
    for levels, status in ((900, 422), (1_000, 400)):
        body = '{"history": [], "rules": {"filter": ' + _deep(levels) + "}}"
        r = ml100k_client.post(
            "/v1/recommendations", content=body, headers={"Content-Type": "application/json"}
        )
        assert r.status_code == status, (levels, r.text[:300])


def test_a_body_too_deep_to_read_as_json_is_a_400_not_a_500(ml100k_client: TestClient) -> None:
    """Past Python's JSON recursion limit the body is unreadable before any rule code runs."""
    body = '{"history": [], "rules": {"filter": ' + _deep(50_000) + "}}"
    r = ml100k_client.post(
        "/v1/recommendations", content=body, headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 400
    assert r.json()["message"].startswith("body: JSON nested too deeply to read")


#: Each kind of rule, and rules together, for the index-against-exact comparisons.
INDEXED_RULES: list[dict[str, Any]] = [
    {"filter": "genres:Comedy", "boost": "year>=1995^1.5"},
    {"boost": ["genres:Drama^2", "year<1980^-1"]},
    {"cap": "genres:2", "boost": "year>=1995^0.5"},
    {"mmr": 0.5, "filter": "year>=1980"},
]


def _same_list(indexed: dict[str, Any], exact: dict[str, Any], params: object) -> None:
    """The same items as the exact server's, and the same boost unit."""
    assert _ids(indexed) == _ids(exact), params
    unit = exact.get("boost_unit")
    assert indexed.get("boost_unit") == (None if unit is None else pytest.approx(unit, rel=1e-4))


def test_rules_answer_alike_from_the_ann_index(
    ml100k_client: TestClient, ml100k_client_factory: Callable[..., TestClient]
) -> None:
    # The same store and catalog served from bpr-mf's index with every list probed: each
    # rule (filter, boost, cap, MMR, together) gives the exact server's list, boost unit
    # included, and the lists were answered from the index.
    indexed = ml100k_client_factory(ann="on", ann_nprobe=100_000)
    queries = INDEXED_RULES
    for params in queries:
        for user in USERS[:3]:
            a, e = _recs(indexed, user, k=10, **params), _recs(ml100k_client, user, k=10, **params)
            _same_list(a, e, params)
    samples = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in indexed.get("/metrics").text.splitlines()
        if line.startswith(("genrec_ann_rows_total", "genrec_ann_fallback_total"))
    }
    answered = samples.pop('genrec_ann_rows_total{model="bpr-mf"}')
    # A list whose seen items and filter leave fewer candidates than a diversity pool
    # falls back, and says why; no rule sends a list to the exact path by itself.
    assert set(samples) <= {'genrec_ann_fallback_total{model="bpr-mf",reason="too_few_candidates"}'}
    assert answered >= 10 and answered + sum(samples.values()) == len(queries) * 3


def test_similar_lists_answer_alike_from_the_similar_items_index(
    ml100k_client: TestClient, ml100k_client_factory: Callable[..., TestClient]
) -> None:
    # bpr-mf's similar-items index (cosine over its item vectors) with every list probed:
    # plain lists and each rule give the exact server's list, scores and boost unit, and
    # were answered from the index (app.serving.similarity).
    indexed = ml100k_client_factory(ann="on", ann_similar_nprobe=100_000)
    queries: list[dict[str, Any]] = [{}, *INDEXED_RULES]
    items = ["50", "181", "1"]
    for params in queries:
        for item in items:
            a = indexed.get(f"/v1/items/{item}/similar", params={"k": 10, **params})
            e = ml100k_client.get(f"/v1/items/{item}/similar", params={"k": 10, **params})
            assert a.status_code == e.status_code == 200, (a.text, e.text)
            _same_list(a.json(), e.json(), params)
            scores = [it["score"] for it in e.json()["items"]]
            assert [it["score"] for it in a.json()["items"]] == pytest.approx(scores, abs=1e-5)
    metrics = indexed.get("/metrics").text
    assert f'genrec_ann_rows_total{{model="bpr-mf"}} {float(len(queries) * len(items))}' in metrics
    assert "genrec_ann_fallback_total{" not in metrics


def test_a_rule_compiles_off_the_event_loop_and_a_cached_plan_in_it(
    ml100k_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A compile is a pass over the catalog (2 s at 50k items): on the loop it stalled every
    request, /healthz included."""
    on_loop: list[bool] = []
    build = RuleCompiler._build

    def recording(self: RuleCompiler, *args: Any) -> Any:
        try:
            asyncio.get_running_loop()
            on_loop.append(True)
        except RuntimeError:
            on_loop.append(False)
        return build(self, *args)

    monkeypatch.setattr(RuleCompiler, "_build", recording)
    params = {"k": 5, "filter": "genres:Comedy;year>=1991", "boost": "year<1980^-1"}
    for _ in range(3):
        assert _recs(ml100k_client, "42", **params)["items"]
    r = ml100k_client.get("/v1/items/50/similar", params={"k": 5, "filter": "year>=1992"})
    body = {"history": [{"item_id": "50"}], "rules": {"filter": {"op": "exists", "attr": "year"}}}
    for _ in range(2):
        assert ml100k_client.post("/v1/recommendations", json=body).status_code == 200
    assert r.status_code == 200 and on_loop == [False, False, False]  # once per distinct rule


def test_the_rule_parameters_of_one_request_share_one_length_limit(
    ml100k_client: TestClient,
) -> None:
    """Each parameter within its 4,096 characters, 16 filters and 8 boosts held ~100,000
    characters for the parser (~10 us of the event loop per token): together at most 8,192."""
    values = ",".join(["Comedy"] * 250)  # 1,749 characters, within every per-rule limit
    within = {"filter": [f"genres:{values}"] * 4}
    assert ml100k_client.get("/v1/users/1/recommendations", params=within).status_code == 200
    over = {"filter": [f"genres:{values}"] * 4, "boost": f"genres:{values}"}
    r = ml100k_client.get("/v1/users/1/recommendations", params=over)
    assert r.status_code == 422, r.text
    assert "hold 8780 characters together; at most 8192" in r.json()["message"]
