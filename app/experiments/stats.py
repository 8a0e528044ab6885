"""The statistics of experiment results: per-variant rates (CTR, conversion rate) with
their variance, the always-valid comparison with control (mSPRT) and the
sample-ratio-mismatch check.

Why these:

* The randomisation unit is the user (assignment hashes the user id), so clicks
  of one user's lists are correlated. Each variant's CTR (clicks on served items
  / items served) is a ratio of per-user sums; its variance is the delta-method
  (cluster-robust) one over users, not the binomial one over items, which would
  understate it and inflate false positives. The conversion rate (conversions /
  items served) is a ratio of the same kind and is compared the same way, over
  the same unit: its events are as correlated within a user as clicks are.
* Experimenters look at results whenever they like. A fixed-horizon p-value read
  repeatedly declares differences far above its nominal rate; the mixture
  sequential probability ratio test (mSPRT) of Johari, Koomen, Pekelis and Walsh,
  "Always Valid Inference: Continuous Monitoring of A/B Tests" (Operations
  Research 70(3), 2022; arXiv:1512.04922) gives a p-value and a confidence
  interval valid at any stopping time. With the difference's estimate
  ``theta ~ N(theta_true, V)`` and a normal mixing distribution ``N(0, tau^2)``
  over the alternative, the mixture likelihood ratio is the ratio of two normal
  densities, ``N(theta; 0, V + tau^2) / N(theta; 0, V)`` (their logs computed as
  ``scipy.stats.norm.logpdf`` does, on plain floats), the p-value is
  ``min(1, 1 / ratio)`` and the 95% interval is the set of differences the test
  does not reject at 5%.
* Sample ratio mismatch: an exact binomial test (``scipy.stats.binomtest``) of the
  users per variant against the configured weights for two variants; for more, the
  chi-square goodness-of-fit test (``scipy.stats.chisquare``), or exact binomial
  tests per arm with Bonferroni while an arm expects fewer than ``SRM_EXACT_BELOW``
  users. A tiny p-value means assignment or logging is broken and the comparison is
  not to be trusted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def msprt_method(difference: str) -> str:
    """What a comparison's ``method`` says, for the difference of one rate."""
    return (
        f"mSPRT, normal mixture N(0, tau^2) on the {difference} (Johari et al. 2022, "
        "always-valid p-value and confidence interval); variance by the delta method over "
        "users; significance and interval Bonferroni-adjusted for the number of variants "
        "compared"
    )


#: What ``vs_control.method`` says (the CTR comparison).
MSPRT_METHOD = msprt_method("CTR difference")
#: What ``vs_control.conversion.method`` says.
CONVERSION_METHOD = msprt_method("conversion-rate difference")
#: Units (users or sessions) a side before a comparison is evidence. The mSPRT's validity
#: is asymptotic: with a plug-in variance of a few users (often 0 clicks on a side, a
#: variance of 0) A/A runs read after every user from the second on were significant at
#: some read in up to 18% of runs (tests/app/experiments/test_stats.py); from 20 a side,
#: at most 2.5% in the same simulations.
MIN_USERS = 20
#: SRM is flagged below this p-value (a strict threshold: the check runs at every read).
SRM_ALPHA = 0.001

#: Below this many expected users in some arm, an experiment of more than two arms is
#: checked with exact binomial tests rather than the chi-square, whose approximation
#: flags a correct split more often than ``SRM_ALPHA`` when an arm expects few users
#: (``sample_ratio_check``).
SRM_EXACT_BELOW = 100.0


@dataclass(frozen=True)
class RatioEstimate:
    """A ratio of per-user sums (clicks / items served) and the variance of the estimate.

    ``empty`` when the denominator is 0 (nothing served): ``value`` is then 0.0 by
    convention, not a rate, so no difference may be taken with it.
    """

    value: float
    variance: float
    users: int
    empty: bool = False


def ratio_estimate(numerators: Sequence[float], denominators: Sequence[float]) -> RatioEstimate:
    """``sum(num) / sum(den)`` over users, with its delta-method variance.

    ``Var ~= var_u(num_u - r * den_u) / (n * mean(den)^2)`` (sample variance,
    ddof 1); 0 with fewer than two users or no denominator.
    """
    num = np.asarray(numerators, dtype=np.float64)
    den = np.asarray(denominators, dtype=np.float64)
    n = int(num.size)
    total = float(den.sum())
    if n == 0 or total <= 0:
        return RatioEstimate(0.0, 0.0, n, empty=True)
    value = float(num.sum()) / total
    if n < 2:
        return RatioEstimate(value, 0.0, n)
    residual = num - value * den
    variance = float(np.var(residual, ddof=1)) / (n * float(den.mean()) ** 2)
    return RatioEstimate(value, variance, n)


@dataclass(frozen=True)
class SequentialComparison:
    """The always-valid comparison of a variant with control.

    ``diff`` and ``ci95`` are None when a side has served nothing (it has no rate to
    subtract). ``p_value`` is this comparison's own; ``p_value_adjusted`` is Bonferroni-adjusted for
    the experiment's ``comparisons`` (one per non-control variant), and ``significant`` and
    ``ci95`` (simultaneous) follow it: with several variants, each tested at 5% alone,
    the chance that some variant of an A/A test is declared different grows with their
    number. Bonferroni needs nothing of the p-values but their validity, so always-valid
    p-values stay valid however often they are read.
    """

    diff: float | None
    ci95: tuple[float, float] | None
    p_value: float
    significant: bool
    p_value_adjusted: float


def msprt_log_ratio(diff: float, variance: float, tau: float) -> float:
    """log of the mixture likelihood ratio for ``H0: true difference = 0``.

    ``diff`` is the estimate, ``variance`` its variance, ``tau`` the standard
    deviation of the normal mixing distribution over the true difference.
    """
    if variance <= 0:
        return 0.0
    return _normal_logpdf(diff, math.sqrt(variance + tau**2)) - _normal_logpdf(
        diff, math.sqrt(variance)
    )


_LOG_SQRT_2PI = math.log(math.sqrt(2 * math.pi))


def _normal_logpdf(x: float, sd: float) -> float:
    """``log N(x; 0, sd^2)``, the arithmetic of ``scipy.stats.norm.logpdf`` on plain floats:
    scipy's argument checks and broadcasting cost a scalar call some hundred times the
    arithmetic, and the A/A simulations that check the mSPRT take tens of thousands of
    these (their test file: 66 s -> 23 s under load, commit 0c83db3's message)."""
    z = x / sd
    return -0.5 * (z * z) - _LOG_SQRT_2PI - math.log(sd)


def msprt_p_value(diff: float, variance: float, tau: float) -> float:
    """Always-valid p-value ``min(1, 1 / ratio)`` (``P(ever <= alpha) <= alpha`` under H0)."""
    return float(min(1.0, math.exp(-msprt_log_ratio(diff, variance, tau))))


def msprt_half_width(variance: float, tau: float, alpha: float = 0.05) -> float:
    """Half width of the always-valid (1 - alpha) interval: the differences ``d`` with
    ``ratio(diff - d) < 1 / alpha``, solved for the normal mixture in closed form."""
    tau2 = tau * tau
    if variance <= 0 or tau2 <= 0:  # no evidence, or no alternative to weigh it against
        return math.inf
    total = variance + tau2
    # An overflow reads inf: every difference is still possible, the [-1, 1] the caller clips to.
    return math.sqrt(
        variance * (total / tau2) * (2 * math.log(1 / alpha) + math.log(total / variance))
    )


def compare(
    control: RatioEstimate,
    variant: RatioEstimate,
    tau: float,
    alpha: float = 0.05,
    min_users: int = MIN_USERS,
    comparisons: int = 1,
) -> SequentialComparison:
    """``variant - control`` with the mSPRT p-value and interval.

    ``comparisons`` is how many variants the experiment compares with control: the
    significance and the interval are at ``alpha / comparisons`` (Bonferroni), so the
    chance that any of them is wrongly declared different stays under ``alpha``.
    Until each side has ``min_users`` users and a positive variance there is no
    evidence: p = 1 and the interval is every possible difference, [-1, 1]. While a
    side has served nothing there is no difference either: ``diff`` and ``ci95`` None.
    """
    if control.empty or variant.empty:
        return SequentialComparison(None, None, 1.0, False, 1.0)
    diff = variant.value - control.value
    variance = control.variance + variant.variance
    if min(control.users, variant.users) < min_users or variance <= 0:
        return SequentialComparison(diff, (-1.0, 1.0), 1.0, False, 1.0)
    comparisons = max(1, comparisons)
    p_value = msprt_p_value(diff, variance, tau)
    adjusted = min(1.0, p_value * comparisons)
    half = msprt_half_width(variance, tau, alpha / comparisons)
    ci = (max(-1.0, diff - half), min(1.0, diff + half))
    return SequentialComparison(diff, ci, p_value, adjusted < alpha, adjusted)


@dataclass(frozen=True)
class SampleRatioCheck:
    p_value: float
    ok: bool


def sample_ratio_check(users: Sequence[int], weights: Sequence[float]) -> SampleRatioCheck:
    """Whether ``users`` per variant fit the split ``weights`` says.

    Two variants: an exact binomial test of the first's count. The chi-square's
    approximation wants every arm to expect many users; with an arm expecting few (1:99
    weights, or any experiment's first reads) it flagged a correct split up to 3.6 times
    as often as ``SRM_ALPHA`` (300 users at 1:99: 0.36 %), telling the operator to
    distrust a sound experiment. More variants: the chi-square while every arm expects
    at least ``SRM_EXACT_BELOW`` users, else each arm's exact binomial test with
    Bonferroni over the arms (valid at any count; an exact multinomial test would
    enumerate every split).

    A variant of weight 0 expects nobody: one user there is a broken split (p = 0),
    none leaves it out of the test (its expected count of 0 would make the statistic
    0 / 0, and the answer's p-value NaN). So does a weight so much smaller than the
    largest that its share underflows (1e-300 beside 1e300): the shares are taken
    relative to the largest weight first, so what is 0 is 0 before the division.
    """
    observed = np.asarray(users, dtype=np.float64)
    share = np.asarray(weights, dtype=np.float64)
    if share.size and share.max() > 0:
        share = share / share.max()
    empty = share <= 0
    if observed[empty].sum() > 0:
        return SampleRatioCheck(0.0, False)
    observed, share = observed[~empty], share[~empty]
    total = float(observed.sum())
    if total <= 0 or observed.size < 2:
        return SampleRatioCheck(1.0, True)
    share = share / share.sum()
    expected = total * share
    # Imported here: scipy.stats is a tenth of the server's import time, and this is its
    # only use on the server.
    from scipy import stats

    if observed.size == 2:  # one arm's count says it all: one exact test
        p_value = float(stats.binomtest(int(observed[0]), int(total), float(share[0])).pvalue)
    elif expected.min() < SRM_EXACT_BELOW:
        arms = [
            stats.binomtest(int(o), int(total), float(s)).pvalue
            for o, s in zip(observed, share, strict=True)
        ]
        p_value = min(1.0, float(min(arms)) * observed.size)  # Bonferroni over the arms
    else:
        p_value = float(stats.chisquare(observed, f_exp=expected).pvalue)
    return SampleRatioCheck(p_value, p_value >= SRM_ALPHA)
