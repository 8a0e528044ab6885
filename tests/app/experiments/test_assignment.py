"""Assignment: deterministic, independent of process and experiment, split by weight."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

from app.experiments.assignment import bucket, choose
from app.experiments.definitions import Variant

VARIANTS = (Variant("a", "popularity", None, 1), Variant("b", "ease", None, 3))


def test_buckets_are_the_same_in_another_process() -> None:
    here = [bucket("ab1", f"user{n}") for n in range(5)]
    code = "from app.experiments.assignment import bucket; print([bucket('ab1', f'user{n}') for n in range(5)])"
    there = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert there.strip() == str(here)


def test_the_split_follows_the_weights_and_experiments_split_independently() -> None:
    users = [f"user{n}" for n in range(20_000)]
    counts = Counter(choose("ab1", VARIANTS, u).name for u in users)
    assert abs(counts["b"] / len(users) - 0.75) < 0.015
    other = [choose("ab2", VARIANTS, u).name for u in users[:4000]]
    first = [choose("ab1", VARIANTS, u).name for u in users[:4000]]
    both_b = sum(x == y == "b" for x, y in zip(first, other, strict=True)) / 4000
    assert abs(both_b - 0.75 * 0.75) < 0.03  # independent, not the same split


def test_a_zero_weight_variant_gets_nobody() -> None:
    variants = (Variant("a", "popularity", None, 0), Variant("b", "ease", None, 1))
    assert {choose("x", variants, f"u{n}").name for n in range(2000)} == {"b"}
