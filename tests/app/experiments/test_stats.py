"""The experiment statistics on known inputs: the mSPRT against a direct numerical
computation of its mixture, its interval's edge, its validity under repeated looks
(on CTRs and on the rarer conversion rates), the delta-method variance (against
statsmodels' cluster-robust one), and the sample-ratio-mismatch check."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import integrate, stats
from statsmodels.stats.multitest import multipletests

from app.experiments.stats import (
    MIN_USERS,
    SRM_ALPHA,
    RatioEstimate,
    compare,
    msprt_half_width,
    msprt_log_ratio,
    msprt_p_value,
    ratio_estimate,
    sample_ratio_check,
)


def _direct_ratio(diff: float, variance: float, tau: float) -> float:
    """The mixture likelihood ratio by definition: the likelihood of ``diff`` averaged
    over true differences drawn from N(0, tau^2), over its likelihood under H0."""
    sd = math.sqrt(variance)
    mixture, _ = integrate.quad(
        lambda theta: stats.norm.pdf(diff, theta, sd) * stats.norm.pdf(theta, 0, tau),
        -20 * tau,
        20 * tau,
        points=[diff],
        limit=200,
    )
    return float(mixture / stats.norm.pdf(diff, 0, sd))


@pytest.mark.parametrize(
    ("diff", "variance", "tau"),
    [(0.0, 1e-4, 0.02), (0.01, 1e-4, 0.02), (0.03, 4e-5, 0.05), (-0.02, 2e-4, 0.01)],
)
def test_msprt_ratio_equals_the_mixture_computed_directly(
    diff: float, variance: float, tau: float
) -> None:
    direct = _direct_ratio(diff, variance, tau)
    assert math.exp(msprt_log_ratio(diff, variance, tau)) == pytest.approx(direct, rel=1e-6)
    assert msprt_p_value(diff, variance, tau) == pytest.approx(min(1.0, 1 / direct), rel=1e-6)


def test_msprt_p_value_properties() -> None:
    variance, tau = 1e-4, 0.02
    assert msprt_p_value(0.0, variance, tau) == 1.0  # no difference: no evidence
    diffs = np.linspace(0, 0.08, 50)
    p_values = [msprt_p_value(d, variance, tau) for d in diffs]
    assert all(0 < p <= 1 for p in p_values)
    assert all(a >= b for a, b in itertools.pairwise(p_values))  # monotone
    assert msprt_p_value(0.05, variance, tau) == msprt_p_value(-0.05, variance, tau)
    # Always-valid costs power: at the same data it is above the fixed-horizon p-value.
    fixed = 2 * stats.norm.sf(0.03 / math.sqrt(variance))
    assert msprt_p_value(0.03, variance, tau) > fixed


def test_the_interval_edge_is_where_the_test_rejects_at_five_percent() -> None:
    diff, variance, tau = 0.04, 1e-4, 0.02
    half = msprt_half_width(variance, tau)
    for edge in (diff - half, diff + half):
        assert msprt_p_value(diff - edge, variance, tau) == pytest.approx(0.05, rel=1e-9)
    result = compare(
        RatioEstimate(0.10, variance / 2, 500), RatioEstimate(0.14, variance / 2, 500), tau
    )
    assert result.ci95 == pytest.approx((diff - half, diff + half))
    assert result.significant == (result.p_value < 0.05) == (result.ci95[0] > 0)


def test_too_little_data_is_no_evidence() -> None:
    result = compare(RatioEstimate(0.1, 0.0, 1), RatioEstimate(0.5, 0.0, 1), 0.02)
    assert (result.p_value, result.significant, result.ci95) == (1.0, False, (-1.0, 1.0))


def test_ratio_variance_is_the_delta_method_over_users() -> None:
    rng = np.random.default_rng(0)
    served = rng.integers(5, 15, 400)
    clicks = rng.binomial(served, 0.2)
    estimate = ratio_estimate(clicks, served)
    assert estimate.value == pytest.approx(clicks.sum() / served.sum())
    # With one list length per user it is the variance of the mean per-user rate.
    equal = ratio_estimate(clicks, np.full(400, 10))
    assert equal.variance == pytest.approx(np.var(clicks / 10, ddof=1) / 400)
    # And close to the binomial one when users are independent Bernoulli sums.
    binomial = estimate.value * (1 - estimate.value) / served.sum()
    assert estimate.variance == pytest.approx(binomial, rel=0.25)


def _users(rng: np.random.Generator, n: int, rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Per user: items served (one to three lists of 10) and clicks, with user-level
    heterogeneity (a beta-distributed click propensity), as real traffic has."""
    served = 10 * rng.integers(1, 4, n)
    propensity = rng.beta(2, 2 / rate - 2, n)
    return rng.binomial(served, propensity), served


def test_repeated_looks_keep_the_false_positive_rate_under_alpha() -> None:
    """A/A: 300 experiments, each looked at after every 20 users up to 1000; the share
    that is ever significant stays at or under 5% (a fixed-horizon z-test read the same
    way declares far more)."""
    rng = np.random.default_rng(7)
    runs, looks, step = 300, 50, 20
    ever_msprt = ever_fixed = 0
    for _ in range(runs):
        a_clicks, a_served = _users(rng, looks * step, 0.1)
        b_clicks, b_served = _users(rng, looks * step, 0.1)
        hit_m = hit_f = False
        for look in range(1, looks + 1):
            n = look * step
            a = ratio_estimate(a_clicks[:n], a_served[:n])
            b = ratio_estimate(b_clicks[:n], b_served[:n])
            hit_m |= compare(a, b, 0.02).significant
            z = (b.value - a.value) / math.sqrt(a.variance + b.variance)
            hit_f |= 2 * stats.norm.sf(abs(z)) < 0.05
        ever_msprt += hit_m
        ever_fixed += hit_f
    assert ever_msprt / runs <= 0.05
    assert ever_fixed / runs > 0.10  # why a sequential test: peeking inflates the naive one


def test_a_real_difference_is_found() -> None:
    rng = np.random.default_rng(3)
    a = ratio_estimate(*_users(rng, 400, 0.10))
    b = ratio_estimate(*_users(rng, 400, 0.16))
    result = compare(a, b, 0.02)
    assert result.significant and result.ci95[0] > 0 and result.diff > 0


def test_sample_ratio_mismatch() -> None:
    assert sample_ratio_check([500, 510], [1, 1]).ok
    skewed = sample_ratio_check([600, 400], [1, 1])
    assert not skewed.ok and skewed.p_value < 1e-6
    assert sample_ratio_check([600, 400], [3, 2]).ok  # the weights asked for that split
    expected = stats.binomtest(600, 1000, 0.5).pvalue  # two variants: exact
    assert skewed.p_value == pytest.approx(expected)
    many = sample_ratio_check([600, 400, 500], [1, 1, 1])  # every arm expects >= 100
    assert many.p_value == pytest.approx(stats.chisquare([600, 400, 500]).pvalue)
    assert sample_ratio_check([0, 0], [1, 1]).ok


def _false_alarm_rate(users: int, weights: Sequence[float]) -> float:
    """The exact chance that a correct split of ``users`` over ``weights`` is flagged:
    the multinomial probability of every split whose check is not ok (splits of
    probability under 1e-15 together weigh nothing at this scale and are skipped)."""
    shares = np.asarray(weights, dtype=np.float64) / sum(weights)
    splits = np.array(
        [
            (*head, users - sum(head))
            for head in itertools.product(range(users + 1), repeat=len(weights) - 1)
            if sum(head) <= users
        ]
    )
    chances = stats.multinomial.pmf(splits, users, shares)
    return sum(
        float(chance)
        for split, chance in zip(splits, chances, strict=True)
        if chance > 1e-15 and not sample_ratio_check(split.tolist(), list(weights)).ok
    )


@pytest.mark.parametrize(
    ("users", "weights"),
    [
        (300, (1, 99)),  # the 1 % arm expects 3 users
        (2000, (1, 99)),  # 20
        (1000, (1, 199)),  # 5
        (50, (5, 95)),
        (100, (1, 1, 18)),  # two small arms (5 each) beside a large one
    ],
)
def test_srm_false_alarm_rate_stays_under_its_alpha_with_small_expected_counts(
    users: int, weights: tuple[float, ...]
) -> None:
    """An arm that expects few users (1:99 weights, or any experiment's first reads):
    the chi-square's approximation flagged a correct split 3.6 times as often as its
    0.1 % (300 users at 1:99: 0.36 %), so an operator was told to distrust a sound
    experiment. The exact check keeps the rate under SRM_ALPHA."""
    assert _false_alarm_rate(users, weights) <= SRM_ALPHA


def test_srm_still_flags_a_broken_small_arm() -> None:
    """Exact is not blind: an arm at 1:99 that got 15 of 300 users (3 expected) is broken,
    and one that got none of 1000 (10 expected) too."""
    assert not sample_ratio_check([15, 285], [1, 99]).ok
    assert not sample_ratio_check([0, 1000], [1, 99]).ok
    assert not sample_ratio_check([12, 3, 285], [1, 1, 98]).ok
    assert sample_ratio_check([3, 297], [1, 99]).ok


def test_a_variant_of_weight_zero_expects_nobody() -> None:
    """Left out of the chi-square while empty (its 0 / 0 term made the p-value NaN, a null
    in the results' JSON and a false alarm); one user assigned to it is a broken split."""
    paused = sample_ratio_check([500, 510, 0], [1, 1, 0])
    assert paused.ok and paused.p_value == pytest.approx(
        sample_ratio_check([500, 510], [1, 1]).p_value
    )
    leaked = sample_ratio_check([500, 510, 1], [1, 1, 0])
    assert (leaked.p_value, leaked.ok) == (0.0, False)
    assert sample_ratio_check([700, 0], [1, 0]).ok  # one variant left to test: nothing to compare


def test_a_weight_whose_share_underflows_expects_nobody_too() -> None:
    """1e300 beside 1e-300: the small share underflowed to 0 only inside the division, so
    its 0 / 0 term made the p-value NaN (null in the results, a false MISMATCH)."""
    split = sample_ratio_check([5, 0], [1e300, 1e-300])
    assert (split.p_value, split.ok) == (1.0, True)
    leaked = sample_ratio_check([5, 1], [1e300, 1e-300])
    assert (leaked.p_value, leaked.ok) == (0.0, False)
    # shares far apart but both representable are tested as usual
    assert sample_ratio_check([1000, 0], [1e300, 1e290]).ok


def test_a_tiny_mixing_sd_gives_an_interval_not_an_error() -> None:
    """tau = 1e-200 made tau**2 underflow to 0 and the half width divide by it: a 500 on
    the results and on the dashboard's experiments page. Experiments now refuse
    tau < 1e-6 (``MIN_MIXING_SD``); one stored before that still reads."""
    assert msprt_half_width(1e-4, 1e-200) == math.inf
    result = compare(RatioEstimate(0.10, 1e-5, 30), RatioEstimate(0.12, 1e-5, 30), tau=1e-200)
    assert result.ci95 == (-1.0, 1.0) and math.isfinite(result.p_value)
    assert math.isfinite(msprt_half_width(1e-4, 1e-6))


def test_several_variants_share_the_five_percent() -> None:
    """Each of m variants compared with control at 5% made the chance that *some* A/A
    variant is declared different grow with m (up to 19 comparisons an experiment may
    have). The p-values are Bonferroni-adjusted (as statsmodels' ``multipletests``), which
    stays valid at every look since each raw p-value is always valid, and the interval is
    the simultaneous one at 5 / m %, so that it excludes 0 exactly when it is significant."""
    control, variant, tau = RatioEstimate(0.10, 5e-5, 500), RatioEstimate(0.133, 5e-5, 500), 0.02
    alone = compare(control, variant, tau)
    assert alone.p_value_adjusted == alone.p_value and alone.significant
    raw = alone.p_value
    assert 0.05 / 4 < raw < 0.05
    four = compare(control, variant, tau, comparisons=4)
    reject, adjusted, _, _ = multipletests([raw] * 4, alpha=0.05, method="bonferroni")
    assert four.p_value == raw and four.p_value_adjusted == pytest.approx(adjusted[0])
    assert not four.significant and not reject[0]
    assert four.ci95[0] < 0 < four.ci95[1]  # the simultaneous interval: consistent with it
    assert four.ci95 == pytest.approx(
        (
            four.diff - msprt_half_width(1e-4, tau, 0.05 / 4),
            four.diff + msprt_half_width(1e-4, tau, 0.05 / 4),
        )
    )


def test_many_variants_keep_the_familywise_rate_under_alpha() -> None:
    """A/A/.../A with 9 variants beside control, each run looked at after every 20 users:
    the share of runs in which any variant is ever significant stays at or under 5%."""
    rng = np.random.default_rng(11)
    runs, looks, step, arms = 100, 25, 20, 10
    ever = 0
    for _ in range(runs):
        users = [_users(rng, looks * step, 0.1) for _ in range(arms)]
        hit = False
        for look in range(1, looks + 1):
            n = look * step
            control, *others = [ratio_estimate(c[:n], s[:n]) for c, s in users]
            hit |= any(compare(control, o, 0.02, comparisons=arms - 1).significant for o in others)
        ever += hit
    assert ever / runs <= 0.05


def test_reads_from_the_first_users_on_keep_the_false_positive_rate_under_alpha() -> None:
    """A/A read after every user from the very first: with two users a side counting as
    evidence, the plug-in variance of a handful of users (often 0 clicks on a side) made
    about 18% of these runs significant at some read, though the p-value is documented
    valid at every read. No evidence is taken before ``MIN_USERS`` a side."""
    rng = np.random.default_rng(5)
    runs, users = 200, 150
    ever = 0
    for _ in range(runs):
        (a_clicks, a_served), (b_clicks, b_served) = (
            _users(rng, users, 0.1),
            _users(rng, users, 0.1),
        )
        ever += any(
            compare(
                ratio_estimate(a_clicks[:n], a_served[:n]),
                ratio_estimate(b_clicks[:n], b_served[:n]),
                0.1,
            ).significant
            for n in range(2, users + 1)
        )
    assert ever / runs <= 0.05
    assert MIN_USERS == 20
    few = compare(RatioEstimate(0.0, 0.0, 19), RatioEstimate(0.5, 1e-3, 19), 0.02)
    assert (few.p_value, few.ci95, few.significant) == (1.0, (-1.0, 1.0), False)


def _conversions(
    rng: np.random.Generator, n: int, ctr: float, per_click: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per user: conversions and items served, conversions being a share of the clicks of
    ``_users`` (user-level heterogeneity included): rates of ``ctr * per_click`` per item."""
    clicks, served = _users(rng, n, ctr)
    return rng.binomial(clicks, per_click), served


def test_the_ratio_variance_is_statsmodels_cluster_robust_one_over_users() -> None:
    """The unit of analysis: a rate's variance is that of an item-level mean clustered by
    user (statsmodels OLS on a constant, cluster-robust with its small-sample factor
    G / (G - 1)), not the item-level one, which heterogeneity between users makes too
    small. Checked on a rare rate (conversions), where the difference is widest."""
    rng = np.random.default_rng(4)
    conversions, served = _conversions(rng, 300, 0.1, 0.2)
    outcome = np.concatenate(
        [np.r_[np.ones(c), np.zeros(s - c)] for c, s in zip(conversions, served, strict=True)]
    )
    user = np.repeat(np.arange(served.size), served)
    design = np.ones((outcome.size, 1))
    clustered = sm.OLS(outcome, design).fit(cov_type="cluster", cov_kwds={"groups": user})
    estimate = ratio_estimate(conversions, served)
    assert estimate.value == pytest.approx(clustered.params[0])
    assert estimate.variance == pytest.approx(clustered.bse[0] ** 2, rel=1e-9)
    per_item = sm.OLS(outcome, design).fit()
    assert per_item.bse[0] ** 2 < estimate.variance


def test_rare_conversions_read_after_every_user_keep_the_false_positive_rate_under_alpha() -> None:
    """A/A on a conversion rate of 0.25% of items (most users with none, a plug-in
    variance from a few converting users), read after every user from the first and
    compared with the default mixing sd (a CTR-sized tau) and a conversion-sized one: the
    share of runs ever significant stays at or under 5%, as for the CTR."""
    rng = np.random.default_rng(9)
    runs, users = 150, 150
    ever = dict.fromkeys((0.02, 0.005), 0)
    for _ in range(runs):
        (a_conv, a_served), (b_conv, b_served) = (
            _conversions(rng, users, 0.05, 0.05),
            _conversions(rng, users, 0.05, 0.05),
        )
        reads = [
            (ratio_estimate(a_conv[:n], a_served[:n]), ratio_estimate(b_conv[:n], b_served[:n]))
            for n in range(2, users + 1)
        ]
        for tau in ever:
            ever[tau] += any(compare(a, b, tau).significant for a, b in reads)
    assert all(count / runs <= 0.05 for count in ever.values()), ever


def test_holm_would_declare_a_difference_the_simultaneous_interval_does_not_exclude() -> None:
    """Why Bonferroni and not Holm (docs/experiments.md): with one variant far better than
    control and another at raw p between 2.5% and 5%, Holm's step-down declares both, but
    the second's simultaneous interval (at 5% / 2) still holds 0, and Holm has no
    simultaneous intervals that would agree with it. Bonferroni keeps ``significant`` and
    ``ci95`` consistent, each variant's verdict depending on its own data only."""
    control, tau = RatioEstimate(0.10, 5e-5, 500), 0.02
    strong = compare(control, RatioEstimate(0.16, 5e-5, 500), tau, comparisons=2)
    weak = compare(control, RatioEstimate(0.133, 5e-5, 500), tau, comparisons=2)
    assert 0.025 < weak.p_value < 0.05
    holm, _, _, _ = multipletests([strong.p_value, weak.p_value], alpha=0.05, method="holm")
    assert holm.tolist() == [True, True]
    assert (strong.significant, weak.significant) == (True, False)
    assert weak.ci95[0] < 0 < weak.ci95[1] and strong.ci95[0] > 0
