"""``RuleCompiler`` caching and invalidation, and the batch step ``apply_rules``."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest
import torch

from app.rules.apply import apply_rules
from app.rules.catalog import AttributeIndex
from app.rules.compile import RuleCompiler
from app.rules.errors import RuleError
from app.rules.request import RulesIn, rules_from_query
from app.serving.loaded import LoadedModel

CATALOG = {
    "a": {"genres": ["Comedy"], "year": 1990},
    "b": {"genres": ["Drama"], "year": 2000},
    "c": {"genres": ["Comedy", "Drama"], "year": 2010},
    "d": {},
}


def _model(item_ids: list[str], revision: str = "1") -> LoadedModel:
    fake = SimpleNamespace(
        name="m",
        revision=revision,
        item_ids=item_ids,
        n_items=len(item_ids),
        device=torch.device("cpu"),
    )
    return cast(LoadedModel, fake)


def _compiler() -> tuple[AttributeIndex, RuleCompiler]:
    index = AttributeIndex()
    index.update(CATALOG.items())
    return index, RuleCompiler(index)


def test_one_mask_per_distinct_rule_and_none_per_repeat() -> None:
    _, compiler = _compiler()
    model = _model(["a", "b", "c", "d", "unknown"])
    plan = compiler.plan(model, rules_from_query(["genres:Comedy"], None, None, None))
    assert plan is not None and plan.keep is not None
    assert plan.keep.tolist() == [True, False, True, False, False]
    for _ in range(3):
        again = compiler.plan(model, rules_from_query(["genres:Comedy"], None, None, None))
        assert again is plan
    # Written differently, same meaning: a new plan, but the mask is shared.
    body = RulesIn.model_validate({"filter": {"op": "eq", "attr": "genres", "value": "Comedy"}})
    other = compiler.plan(model, body.to_rules())
    assert other is not None and other.keep is plan.keep and compiler.compiled == 1


def test_the_caches_are_bounded_in_bytes_as_well_as_entries() -> None:
    # A plan of a filter and a boost over I items holds 6 bytes per item (mask, negation,
    # float offset): at a million items 512 of them would be 3 GB.
    index = AttributeIndex()
    index.update(CATALOG.items())
    ids = [f"i{n}" for n in range(10_000)] + ["a", "b", "c"]
    plan_bytes = 6 * len(ids) + 100  # and its canonical text
    compiler = RuleCompiler(index, entries=512, max_bytes=3 * plan_bytes)
    model = _model(ids)
    years = [str(1900 + n) for n in range(8)]
    plans = [
        compiler.plan(model, rules_from_query([f"year>={y}"], [f"year<={y}^1"], None, None))
        for y in years
    ]
    assert len(compiler._plans) == 3 and compiler._plans.bytes <= 3 * plan_bytes
    assert compiler._masks.bytes <= 3 * plan_bytes  # 16 masks of 1 byte per item: all fit
    latest = rules_from_query([f"year>={years[-1]}"], [f"year<={years[-1]}^1"], None, None)
    assert compiler.plan(model, latest) is plans[-1]  # the newest are kept
    first = rules_from_query([f"year>={years[0]}"], [f"year<={years[0]}^1"], None, None)
    assert compiler.plan(model, first) is not plans[0]  # the oldest was dropped, rebuilt


def test_a_catalog_change_invalidates_every_mask() -> None:
    index, compiler = _compiler()
    model = _model(["a", "b", "c", "d"])
    rules = rules_from_query(["genres:Comedy"], None, None, None)
    first = compiler.plan(model, rules)
    index.update([("d", {"genres": ["Comedy"]})])
    second = compiler.plan(model, rules)
    assert first is not None and second is not None and first.keep is not None
    assert first.keep.tolist() == [True, False, True, False]
    assert second.keep is not None and second.keep.tolist() == [True, False, True, True]
    index.update([("d", {"genres": ["Comedy"]})])  # no change: same revision, same plan
    assert compiler.plan(model, rules) is second


def test_a_grown_model_gets_masks_of_its_new_length() -> None:
    _, compiler = _compiler()
    rules = rules_from_query(["year>=2000"], None, None, None)
    small = compiler.plan(_model(["a", "b"]), rules)
    grown = compiler.plan(_model(["a", "b", "c"], revision="1+c1"), rules)
    assert small is not None and small.keep is not None and small.keep.tolist() == [False, True]
    assert grown is not None and grown.keep is not None
    assert grown.keep.tolist() == [False, True, True]


def test_errors_name_the_attribute() -> None:
    _, compiler = _compiler()
    model = _model(["a"])
    with pytest.raises(RuleError, match="unknown attribute 'colour'"):
        compiler.plan(model, rules_from_query(["colour:red"], None, None, None))
    with pytest.raises(RuleError, match="unknown attribute 'colour'"):
        compiler.plan(model, rules_from_query(None, None, "colour:2", None))


def test_apply_rules_masks_and_boosts_only_the_rows_that_have_rules() -> None:
    _, compiler = _compiler()
    model = _model(["a", "b", "c", "d"])
    filtered = compiler.plan(model, rules_from_query(["genres:Drama"], None, None, None))
    boosted = compiler.plan(model, rules_from_query(None, ["genres:Comedy^2"], None, None))
    scores = torch.tensor([[4.0, 3.0, 2.0, 1.0]] * 3)
    out, drop, units = apply_rules(scores, [None, filtered, boosted])
    assert drop is not None and units is not None
    assert drop.tolist() == [[False] * 4, [True, False, False, True], [False] * 4]
    spread = float(scores[2].std(correction=0))
    expected: list[Any] = [4.0 + 2 * spread, 3.0, 2.0 + 2 * spread, 1.0]
    assert out[2].tolist() == pytest.approx(expected)
    assert out[0].tolist() == out[1].tolist() == [4.0, 3.0, 2.0, 1.0]
    assert units[2] == pytest.approx(spread) and torch.isnan(units[0])
    unchanged, none, nothing = apply_rules(scores, [None, None, None])
    assert unchanged is scores and none is None and nothing is None


def test_constant_scores_boost_by_the_weight_itself() -> None:
    _, compiler = _compiler()
    model = _model(["a", "b"])
    plan = compiler.plan(model, rules_from_query(None, ["genres:Comedy^0.5"], None, None))
    out, _, units = apply_rules(torch.zeros(1, 2), [plan])
    assert out.tolist() == [[0.5, 0.0]] and units is not None and float(units[0]) == 1.0


def test_an_integer_beyond_a_float_stored_in_the_catalog_never_fails_a_rule() -> None:
    # Stored before PUT and import refused integers beyond 64 bits: compared as an infinity.
    index = AttributeIndex()
    index.update({"a": {"n": 10**400}, "b": {"n": [1, -(10**400)]}, "c": {"n": 2}}.items())
    compiler = RuleCompiler(index)
    model = _model(["a", "b", "c"])
    for text, expected in [
        ("n:2", [False, False, True]),
        ("n>1000", [True, False, False]),
        ("n<0", [False, True, False]),
        ("n:*", [True, True, True]),
    ]:
        plan = compiler.plan(model, rules_from_query([text], None, None, None))
        assert plan is not None and plan.keep is not None
        assert plan.keep.tolist() == expected, text
    capped = compiler.plan(model, rules_from_query(None, None, "n:1", None))
    assert capped is not None and capped.cap is not None
    assert capped.cap.membership.shape[0] == 3


def test_cache_keys_stay_small_for_rules_at_their_limits() -> None:
    # 20 leaves x 256 values x ~250 characters: 1.3 MB of JSON. Keyed by the text, 512 of
    # them held gigabytes outside the caches' byte budgets (the hunt: +7.8 MB per request).
    _, compiler = _compiler()
    model = _model(["a", "b", "c", "d"])
    leaves = [
        {"op": "any", "attr": "genres", "values": [f"{n}-{v}-" + "x" * 240 for v in range(256)]}
        for n in range(20)
    ]
    body = RulesIn.model_validate({"filter": {"op": "or", "rules": leaves}})
    plan = compiler.plan(model, body.to_rules())
    assert plan is not None and compiler.plan(model, body.to_rules()) is plan
    key_bytes = sum(
        len(repr(key)) for lru in (compiler._plans, compiler._masks) for key in lru._data
    )
    assert key_bytes < 1_000
    assert compiler._plans.bytes > 20 * 256 * 240  # the canonical text a plan keeps counts


def test_a_cached_plan_is_looked_up_without_waiting_on_a_compile() -> None:
    _, compiler = _compiler()
    model = _model(["a", "b", "c", "d"])
    rules = rules_from_query(["genres:Comedy"], None, None, None)
    assert compiler.cached(model, rules) is None  # not compiled yet
    plan = compiler.plan(model, rules)
    assert plan is not None and compiler.cached(model, rules) is plan
    with compiler._lock:  # a compile in a worker thread holds it: the loop does not wait
        assert compiler.cached(model, rules) is None
