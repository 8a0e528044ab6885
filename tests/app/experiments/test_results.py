"""``results.summarize`` on per-unit totals built by hand: what the results document says
when an experiment compares several variants with control."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from statsmodels.stats.multitest import multipletests

from app.experiments.definitions import ExperimentDef, Variant
from app.experiments.results import UserTotals, VariantTotals, summarize
from app.schemas_experiments import ComparisonOut


def _totals(
    clicks: list[int], served: int = 10, conversions: list[int] | None = None
) -> VariantTotals:
    totals = VariantTotals()
    for n, c in enumerate(clicks):
        totals.users[("user", str(n))] = UserTotals(
            impressions=1, served=served, clicks=c, conversions=conversions[n] if conversions else 0
        )
    return totals


def test_each_comparison_is_adjusted_for_the_variants_that_get_traffic() -> None:
    """Two variants with traffic beside control (and a paused one): each p-value is
    adjusted for 2 comparisons, and significance and the interval follow the adjusted
    p-value, not the comparison's own."""
    experiment = ExperimentDef(
        name="abc",
        status="running",
        control="a",
        variants=(
            Variant("a", "popularity", None, 1),
            Variant("b", "ease", "1", 1),
            Variant("c", "ease", "2", 1),
            Variant("paused", "ease", "3", 0),
        ),
        window_minutes=30.0,
        mixing_sd=0.02,
        created_at=datetime(2026, 12, 1, tzinfo=UTC),
        stopped_at=None,
    )
    control = [1, 2, 1, 0, 2, 1, 1, 2] * 25
    totals = {
        "a": _totals(control),
        "b": _totals([c + (n % 4 == 0) for n, c in enumerate(control)]),
        "c": _totals(control[::-1]),
        "paused": VariantTotals(),
    }
    doc = summarize(experiment, totals)
    versus = {v.name: entry["vs_control"] for v, entry in doc["variants"] if "vs_control" in entry}
    raw = [versus[name]["p_value"] for name in ("b", "c", "paused")]
    assert 0.025 < raw[0] < 0.05  # significant alone, not as one of two
    _, adjusted, _, _ = multipletests(raw[:2], alpha=0.05, method="bonferroni")
    for name, expected in zip(("b", "c"), adjusted, strict=True):
        assert versus[name]["comparisons"] == 2
        assert versus[name]["p_value_adjusted"] == pytest.approx(expected)
        assert versus[name]["significant"] is bool(expected < 0.05)
        low, high = versus[name]["ci95"]
        assert (low > 0 or high < 0) is versus[name]["significant"]
    assert versus["b"]["significant"] is False
    assert versus["paused"]["p_value_adjusted"] == 1.0


def _two_arms() -> ExperimentDef:
    return ExperimentDef(
        name="ab",
        status="running",
        control="a",
        variants=(Variant("a", "popularity", None, 1), Variant("b", "ease", "1", 1)),
        window_minutes=30.0,
        mixing_sd=0.02,
        created_at=datetime(2026, 12, 1, tzinfo=UTC),
        stopped_at=None,
    )


@pytest.mark.parametrize("empty", ["a", "b"])
def test_an_arm_with_nothing_served_has_no_difference_and_no_interval(empty: str) -> None:
    """An arm that has served nothing has no CTR: its 0.0 was subtracted from the other's
    and the difference shown beside p = 1 as if measured. Difference and interval are
    null (and the response schema accepts that) until both arms have served something."""
    totals = {"a": _totals([1, 2, 0] * 10), "b": _totals([2, 1, 1] * 10)}
    totals[empty] = VariantTotals()
    doc = summarize(_two_arms(), totals)
    versus = doc["variants"][1][1]["vs_control"]
    assert versus["ctr_diff"] is None and versus["ci95"] is None
    assert (versus["p_value"], versus["p_value_adjusted"], versus["significant"]) == (
        1.0,
        1.0,
        False,
    )
    assert ComparisonOut.model_validate(versus).ctr_diff is None
    conversion = versus["conversion"]
    assert conversion["conversion_rate_diff"] is None and conversion["ci95"] is None
    assert (conversion["p_value"], conversion["significant"]) == (1.0, False)
    both = summarize(_two_arms(), {"a": _totals([1, 2, 0] * 10), "b": _totals([2, 1, 1] * 10)})
    assert both["variants"][1][1]["vs_control"]["ctr_diff"] == pytest.approx(1 / 30)


def test_the_conversion_rate_is_compared_like_the_ctr() -> None:
    """Only the CTR had a test; the conversion rate (conversions / items served, per user
    as the CTR) gets the same always-valid comparison, Bonferroni-adjusted over the
    variants compared, with its own simultaneous interval: here the conversions differ
    and the clicks do not."""
    experiment = ExperimentDef(
        name="abc",
        status="running",
        control="a",
        variants=(
            Variant("a", "popularity", None, 1),
            Variant("b", "ease", "1", 1),
            Variant("c", "ease", "2", 1),
        ),
        window_minutes=30.0,
        mixing_sd=0.02,
        created_at=datetime(2026, 12, 1, tzinfo=UTC),
        stopped_at=None,
    )
    clicks = [1, 2, 1, 0, 2, 1, 1, 2] * 25
    few = [0, 1, 0, 0, 0, 0, 0, 1] * 25
    more = [1, 1, 0, 0, 1, 1, 0, 1] * 25
    totals = {
        "a": _totals(clicks, conversions=few),
        "b": _totals(clicks, conversions=more),
        "c": _totals(clicks, conversions=few[::-1]),
    }
    doc = summarize(experiment, totals)
    entries = {v.name: entry for v, entry in doc["variants"]}
    versus = {name: entries[name]["vs_control"] for name in ("b", "c")}
    assert versus["b"]["ctr_diff"] == 0.0 and versus["b"]["significant"] is False
    conversion = {name: versus[name]["conversion"] for name in ("b", "c")}
    assert conversion["b"]["conversion_rate_diff"] == pytest.approx(
        entries["b"]["conversion_rate"] - entries["a"]["conversion_rate"]
    )
    raw = [conversion[name]["p_value"] for name in ("b", "c")]
    _, adjusted, _, _ = multipletests(raw, alpha=0.05, method="bonferroni")
    for name, expected in zip(("b", "c"), adjusted, strict=True):
        found = conversion[name]
        assert found["comparisons"] == 2 and "conversion" in found["method"]
        assert found["p_value_adjusted"] == pytest.approx(expected)
        assert found["significant"] is bool(expected < 0.05)
        low, high = found["ci95"]
        assert low <= found["conversion_rate_diff"] <= high
        assert (low > 0 or high < 0) is found["significant"]
    assert conversion["b"]["significant"] is True and conversion["c"]["significant"] is False
    assert ComparisonOut.model_validate(versus["b"]).conversion is not None
