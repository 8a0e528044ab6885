"""The SRM false-alarm figures of docs/experiments.md ("Sample-ratio mismatch"): the exact
chance that a correct split is flagged (p < SRM_ALPHA), summed over every split, by the
chi-square the check used before 2026-12-07 and by the check now; and both p-values of
one broken small arm.

    PYTHONPATH=$PWD .venv/bin/python docs/data/srm-2026-12-07/false_alarms.py > docs/data/srm-2026-12-07/false_alarms.txt
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from app.experiments.stats import SRM_ALPHA, sample_ratio_check


def chi_square_p(users: list[int], weights: list[float]) -> float:
    share = np.asarray(weights, dtype=float) / sum(weights)
    return float(stats.chisquare(users, f_exp=sum(users) * share).pvalue)


def false_alarm(users: int, weights: list[float], p_of: object) -> float:
    """Two variants: the sum of the binomial probabilities of the flagged splits."""
    share = weights[0] / sum(weights)
    total = 0.0
    for first in range(users + 1):
        if p_of([first, users - first], weights) < SRM_ALPHA:  # type: ignore[operator]
            total += float(stats.binom.pmf(first, users, share))
    return total


def now_p(users: list[int], weights: list[float]) -> float:
    return sample_ratio_check(users, weights).p_value


for users, weights in [(300, [1.0, 99.0]), (2_000, [1.0, 99.0]), (1_000, [1.0, 199.0])]:
    print(
        f"{users} users at {weights[0]:g}:{weights[1]:g}: chi-square "
        f"{false_alarm(users, weights, chi_square_p):.4%}, now "
        f"{false_alarm(users, weights, now_p):.4%} (alpha {SRM_ALPHA:.1%})"
    )
broken = [0, 1_000]
print(
    f"none of 1,000 users in a 1% arm: chi-square p = {chi_square_p(broken, [1.0, 99.0]):.2g}, "
    f"now p = {now_p(broken, [1.0, 99.0]):.2g}"
)
